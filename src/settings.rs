//! Image settings declared beside the environment (the `conda-docker:` key of an
//! `environment.yml`) and on the command line, merged once: the command line wins.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::image::{ConfigFile, Image};

/// A non-root user to run as: `NAME[:UID[:GID]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// The user (and group) name.
    pub name: String,
    /// The uid (default 1000).
    pub uid: u32,
    /// The gid (default: the uid).
    pub gid: u32,
}

impl std::str::FromStr for UserSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default().to_string();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            && !name.starts_with('-');
        if !valid {
            return Err(format!(
                "`{s}`: the user name must be lowercase letters, digits, `_` or `-` (NAME[:UID[:GID]])"
            ));
        }
        let num = |p: Option<&str>, what: &str| -> Result<Option<u32>, String> {
            p.map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("`{s}`: {what} `{v}` is not a number"))
            })
            .transpose()
        };
        let uid = num(parts.next(), "uid")?.unwrap_or(1000);
        let gid = num(parts.next(), "gid")?.unwrap_or(uid);
        if uid == 0 {
            return Err(format!(
                "`{s}`: uid 0 is root; leave --user out to run as root"
            ));
        }
        Ok(Self { name, uid, gid })
    }
}

/// How the image is set up beyond its environment.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSettings {
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// The entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// The default command.
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    pub workdir: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Ports to expose (`8080`, `53/udp`).
    pub expose: Vec<String>,
    /// A user to create and run as, `NAME[:UID[:GID]]`.
    pub user: Option<String>,
    /// Whether the user owns the prefix (so it can install into it).
    pub writable_prefix: bool,
}

impl ImageSettings {
    /// `self` overridden by `cli`: maps are merged key by key, other fields replaced when set.
    pub fn merged_with(mut self, cli: ImageSettings) -> Self {
        self.env.extend(cli.env);
        self.labels.extend(cli.labels);
        self.annotations.extend(cli.annotations);
        self.expose.extend(cli.expose);
        self.entrypoint = cli.entrypoint.or(self.entrypoint);
        self.cmd = cli.cmd.or(self.cmd);
        self.workdir = cli.workdir.or(self.workdir);
        self.user = cli.user.or(self.user);
        self.writable_prefix |= cli.writable_prefix;
        self
    }

    /// The user to create, parsed.
    pub fn user_spec(&self) -> Result<Option<UserSpec>, String> {
        self.user.as_deref().map(str::parse).transpose()
    }

    /// Sets these settings in `image`'s config and annotations (not the user's files).
    pub fn apply(&self, image: &mut Image) -> Result<(), String> {
        let user = self.user_spec()?;
        let config: &mut ConfigFile = image.config_mut();
        let run = &mut config.config;
        for (k, v) in &self.env {
            run.set_env_var(k, v);
        }
        if let Some(e) = &self.entrypoint {
            run.entrypoint = Some(e.clone());
            // Docker drops the base's Cmd when the entrypoint changes.
            if self.cmd.is_none() {
                run.cmd = None;
            }
        }
        if let Some(c) = &self.cmd {
            run.cmd = Some(c.clone());
        }
        if let Some(w) = &self.workdir {
            run.working_dir = Some(w.clone());
        }
        if !self.labels.is_empty() {
            run.labels
                .get_or_insert_with(BTreeMap::new)
                .extend(self.labels.clone());
        }
        for port in &self.expose {
            let port = if port.contains('/') {
                port.clone()
            } else {
                format!("{port}/tcp")
            };
            run.exposed_ports
                .get_or_insert_with(BTreeMap::new)
                .insert(port, serde_json::json!({}));
        }
        if let Some(u) = user {
            run.user = Some(format!("{}:{}", u.uid, u.gid));
        }
        image.annotations_mut().extend(self.annotations.clone());
        Ok(())
    }
}

/// Parses a command given as a JSON array (`["python", "-m", "http.server"]`) or as words.
pub fn parse_command(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| format!("`{s}` is not a JSON array of strings: {e}"))
    } else {
        Ok(t.split_whitespace().map(str::to_string).collect())
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_land_in_the_config() {
        let mut image = Image::scratch(&crate::image::Platform::linux("amd64", None));
        image.config_mut().config.cmd = Some(vec!["/bin/sh".into()]);
        let settings = ImageSettings {
            entrypoint: Some(vec!["bzip2".into()]),
            workdir: Some("/data".into()),
            expose: vec!["8080".into(), "53/udp".into()],
            annotations: [(
                "org.opencontainers.image.source".to_string(),
                "x".to_string(),
            )]
            .into(),
            user: Some("app:1001".into()),
            ..Default::default()
        };
        settings.apply(&mut image).unwrap();
        let run = &image.config().config;
        assert_eq!(run.entrypoint.as_deref(), Some(&["bzip2".to_string()][..]));
        assert_eq!(
            run.cmd, None,
            "a new entrypoint drops the base's Cmd, as Docker does"
        );
        assert_eq!(run.working_dir.as_deref(), Some("/data"));
        let ports: Vec<&String> = run.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "8080/tcp"]);
        assert_eq!(run.user.as_deref(), Some("1001:1001"));
        assert_eq!(image.annotations()["org.opencontainers.image.source"], "x");
    }

    #[test]
    fn users() {
        assert_eq!(
            "app:1000".parse::<UserSpec>().unwrap(),
            UserSpec {
                name: "app".into(),
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!("app:1001:50".parse::<UserSpec>().unwrap().gid, 50);
        assert!("App".parse::<UserSpec>().is_err());
        assert!("app:x".parse::<UserSpec>().is_err());
        assert!("app:0".parse::<UserSpec>().is_err());
    }

    #[test]
    fn the_command_line_wins() {
        let file: ImageSettings =
            serde_yaml::from_str("env: {A: file, B: file}\ncmd: [a]\nworkdir: /w\n").unwrap();
        let cli = ImageSettings {
            env: [("A".to_string(), "cli".to_string())].into(),
            cmd: Some(vec!["b".into()]),
            ..Default::default()
        };
        let m = file.merged_with(cli);
        assert_eq!((m.env["A"].as_str(), m.env["B"].as_str()), ("cli", "file"));
        assert_eq!(m.cmd.unwrap(), ["b"]);
        assert_eq!(m.workdir.as_deref(), Some("/w"));
        assert_eq!(
            parse_command(r#"["python", "-c", "print(1)"]"#)
                .unwrap()
                .len(),
            3
        );
        assert_eq!(parse_command("bzip2 --help").unwrap(), ["bzip2", "--help"]);
    }
}
