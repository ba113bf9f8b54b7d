//! The image configuration (the "config blob"), in the shape Docker and OCI share.
//!
//! Fields this type does not name (Docker's `Healthcheck`, `Shell`, `container_config`, ...) are
//! kept in `extra` so that an edited base image loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::Digest;

/// The image configuration: platform, run-time defaults, layer diff_ids and history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// CPU architecture in Go's naming (`amd64`, `arm64`).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8` for arm64), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// When the image was created, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The run-time defaults for containers made from the image.
    #[serde(default)]
    pub config: RunConfig,
    /// The layers' uncompressed digests, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// How each layer was made, bottom first; `empty_layer` entries have no layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields not named above, kept as they were read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Container run-time defaults (the `config` object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user`, `uid` or `uid:gid` to run as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to expose, as `port/proto` keys with empty objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// Environment variables as `KEY=VALUE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The program to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or program, without an entrypoint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volume mount points, as keys with empty objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// The working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The signal that stops the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields not named above (`Healthcheck`, `Shell`, `OnBuild`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `rootfs` object: the layers' diff_ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command or tool that made the layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free-form comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl RunConfig {
    /// The value of environment variable `key`, if set.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .flatten()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// Sets environment variable `key` to `value`, replacing an earlier value in place.
    pub fn set_env_var(&mut self, key: &str, value: &str) {
        self.set_env_vars([(key, value)]);
    }

    /// Sets each variable in turn (a later one of a key wins), replacing earlier values in
    /// place: one pass over the list, however many are set.
    pub fn set_env_vars<'a>(&mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let env = self.env.get_or_insert_with(Vec::new);
        let mut position: std::collections::HashMap<String, usize> = env
            .iter()
            .enumerate()
            .map(|(i, kv)| (kv.split('=').next().unwrap_or(kv).to_string(), i))
            .collect();
        for (key, value) in vars {
            let entry = format!("{key}={value}");
            match position.get(key) {
                Some(&i) => env[i] = entry,
                None => {
                    position.insert(key.to_string(), env.len());
                    env.push(entry);
                }
            }
        }
    }
}

/// RFC 3339 (UTC, whole seconds) for `epoch` seconds, as image configs write times.
pub fn rfc3339(epoch: u64) -> String {
    chrono::DateTime::from_timestamp(epoch as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],
            "Healthcheck":{"Test":["CMD","true"]},"Shell":["/bin/bash","-c"]},
            "rootfs":{"type":"layers","diff_ids":[]},"docker_version":"20.10.24"}"#;
        let cfg: ConfigFile = serde_json::from_str(json).unwrap();
        let again: Value = serde_json::to_value(&cfg).unwrap();
        assert_eq!(again["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(again["config"]["Shell"][0], "/bin/bash");
        assert_eq!(again["docker_version"], "20.10.24");
    }

    #[test]
    fn env_vars_are_replaced_in_place() {
        let mut c = RunConfig {
            env: Some(vec!["PATH=/bin".into(), "PATHX=1".into()]),
            ..Default::default()
        };
        c.set_env_var("PATH", "/opt/bin:/bin");
        c.set_env_var("NEW", "x");
        assert_eq!(c.env_var("PATH"), Some("/opt/bin:/bin"));
        assert_eq!(c.env_var("PATHX"), Some("1"));
        assert_eq!(c.env.as_ref().unwrap().len(), 3);
    }
}
