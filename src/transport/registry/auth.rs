//! Registry credentials, found where Docker and podman keep them.
//!
//! Looked up in order: explicit credentials (`--creds`), the environment
//! (`CONDA_DOCKER_REGISTRY_USERNAME`/`_PASSWORD`), podman's `auth.json` (`$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`), then Docker's `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker`): `credHelpers`, `auths`, `credsStore`. Both files share one format, so one parser
//! reads them (the `docker_credential` crate reads only Docker's).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Why credentials could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// An auth file could not be read or written.
    #[error("`{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An auth file is not the JSON Docker and podman write.
    #[error("`{}` is not a Docker or podman auth file", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// There is no home directory to find `~/.docker/config.json` in.
    #[error("no home directory to store the login in: set DOCKER_CONFIG")]
    NoHome,
    /// A credential helper could not be run, failed, or answered something else than JSON.
    #[error("`docker-credential-{helper}`: {what}")]
    Helper {
        /// The helper's name (`pass`, `desktop`).
        helper: String,
        /// What went wrong.
        what: String,
        /// The cause, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl AuthError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn helper(helper: &str, what: &str) -> impl FnOnce(std::io::Error) -> Self {
        let (helper, what) = (helper.to_string(), what.to_string());
        move |e| Self::Helper {
            helper,
            what,
            source: Some(Box::new(e)),
        }
    }
}

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password; never printed.
        password: String,
    },
    /// An identity (refresh) token, exchanged for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// Parses `USER:PASS` as given to `--creds`.
    pub fn from_user_pass(s: &str) -> Option<Self> {
        let (username, password) = s.split_once(':')?;
        Some(Self::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// Where a credential came from, for messages (never the secret itself).
pub type Source = String;

/// The `auths` file format shared by Docker's config.json and podman's auth.json.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuthFile {
    /// Per-registry entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auths: BTreeMap<String, AuthEntry>,
    /// A credential helper for every registry.
    #[serde(
        default,
        rename = "credsStore",
        skip_serializing_if = "Option::is_none"
    )]
    pub creds_store: Option<String>,
    /// Credential helpers per registry.
    #[serde(
        default,
        rename = "credHelpers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub cred_helpers: BTreeMap<String, String>,
    /// Everything else in the file, kept when we write it back.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One `auths` entry.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// An identity token.
    #[serde(
        default,
        rename = "identitytoken",
        skip_serializing_if = "Option::is_none"
    )]
    pub identity_token: Option<String>,
    /// Plain user name (older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Plain password (older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The keys a registry may appear under in an auth file (Docker Hub has its legacy URL).
fn keys_for(registry: &str) -> Vec<String> {
    if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
        ]
    }
}

/// The key `docker login` writes for a registry.
pub fn login_key(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// Where credentials are looked up when none is given, as the environment names them:
/// resolved once ([`AuthSources::from_env`]), so the lookup reads files, never variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthSources {
    /// `CONDA_DOCKER_REGISTRY_USERNAME` and `_PASSWORD`, when both are set.
    pub environment: Option<Credential>,
    /// podman's auth files, in order: `$REGISTRY_AUTH_FILE`, then
    /// `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub podman_files: Vec<PathBuf>,
    /// Docker's config.json: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (where
    /// `docker login` stores a login too).
    pub docker_config: Option<PathBuf>,
}

impl AuthSources {
    /// The credential variables and auth files `env` names.
    pub fn from_env(env: &crate::env::Env) -> Self {
        let environment = match (
            env.var("CONDA_DOCKER_REGISTRY_USERNAME"),
            env.var("CONDA_DOCKER_REGISTRY_PASSWORD"),
        ) {
            (Some(username), Some(password)) => Some(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }),
            _ => None,
        };
        let podman_files = [
            env.path("REGISTRY_AUTH_FILE"),
            env.path("XDG_RUNTIME_DIR")
                .map(|dir| dir.join("containers/auth.json")),
        ];
        let docker_config = match env.path("DOCKER_CONFIG") {
            Some(dir) => Some(dir.join("config.json")),
            None => env.home().map(|h| h.join(".docker/config.json")),
        };
        Self {
            environment,
            podman_files: podman_files.into_iter().flatten().collect(),
            docker_config,
        }
    }
}

/// Reads an auth file; a missing file is empty.
pub fn read_auth_file(path: &Path) -> Result<AuthFile, AuthError> {
    match crate::capped::read_file(path, crate::capped::JSON_CAP) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| AuthError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
        Err(e) => Err(AuthError::io(path)(e)),
    }
}

fn decode_entry(entry: &AuthEntry) -> Option<Credential> {
    if let Some(token) = entry.identity_token.as_ref().filter(|t| !t.is_empty()) {
        return Some(Credential::IdentityToken(token.clone()));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        return Credential::from_user_pass(&String::from_utf8(decoded).ok()?);
    }
    Some(Credential::Basic {
        username: entry.username.clone()?,
        password: entry.password.clone()?,
    })
}

/// Runs `docker-credential-HELPER get` for `server`.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credential>, AuthError> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if !out.status.success() {
        // Helpers answer "credentials not found" with a non-zero exit: not an error for us.
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| AuthError::Helper {
            helper: helper.to_string(),
            what: "answered something other than its JSON".into(),
            source: Some(Box::new(e)),
        })?;
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(answer.secret)
    } else {
        Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

/// Looks up the credential for `registry` in one auth file.
fn from_file(path: &Path, registry: &str) -> Result<Option<Credential>, AuthError> {
    let file = read_auth_file(path)?;
    let keys = keys_for(registry);
    for key in &keys {
        if let Some(helper) = file.cred_helpers.get(key) {
            return from_helper(helper, key);
        }
    }
    for key in &keys {
        if let Some(entry) = file.auths.get(key)
            && let Some(c) = decode_entry(entry)
        {
            return Ok(Some(c));
        }
    }
    if let Some(store) = &file.creds_store {
        return from_helper(store, &login_key(registry));
    }
    Ok(None)
}

/// Finds a credential for `registry` (`explicit`, else in `sources`); returns it (if any) and
/// the places searched.
pub fn lookup(
    registry: &str,
    explicit: Option<&Credential>,
    sources: &AuthSources,
) -> (Option<(Credential, Source)>, Vec<String>) {
    let mut searched = Vec::new();
    if let Some(c) = explicit {
        return (Some((c.clone(), "--creds".into())), searched);
    }
    searched.push("CONDA_DOCKER_REGISTRY_USERNAME/PASSWORD".into());
    if let Some(c) = &sources.environment {
        return (Some((c.clone(), "the environment".into())), searched);
    }
    let files = sources.podman_files.iter().chain(&sources.docker_config);
    for path in files {
        searched.push(path.display().to_string());
        match from_file(path, registry) {
            Ok(Some(c)) => return (Some((c, path.display().to_string())), searched),
            Ok(None) => {}
            Err(e) => tracing::warn!("ignoring credentials: {e}"),
        }
    }
    (None, searched)
}

/// Stores a login for `registry` where `docker login` would: with the credential helper that
/// config.json names (leaving an empty `auths` entry, as Docker does), else base64 in
/// config.json (`sources`' Docker config). Returns where the secret went.
pub fn store(
    registry: &str,
    username: &str,
    password: &str,
    sources: &AuthSources,
) -> Result<PathBuf, AuthError> {
    let path = sources.docker_config.clone().ok_or(AuthError::NoHome)?;
    let mut file = read_auth_file(&path)?;
    let key = login_key(registry);
    let helper = file.cred_helpers.get(&key).or(file.creds_store.as_ref());
    let stored_in = match helper {
        Some(helper) => {
            store_with_helper(helper, &key, username, password)?;
            PathBuf::from(format!("docker-credential-{helper}"))
        }
        None => path.clone(),
    };
    let entry = file.auths.entry(key).or_default();
    *entry = AuthEntry {
        other: std::mem::take(&mut entry.other),
        ..AuthEntry::default()
    };
    if helper.is_none() {
        let user_pass = format!("{username}:{password}");
        entry.auth = Some(base64::engine::general_purpose::STANDARD.encode(user_pass));
    }
    write_auth_file(&path, &file)?;
    Ok(stored_in)
}

/// Removes the login [`store`] wrote for `registry`, as `docker logout` does: the secret in the
/// credential helper config.json names for it, and its `auths` entries under every key the
/// registry goes by (so [`lookup`] finds it no more). Returns where a login was removed from:
/// empty when there was none.
pub fn remove(registry: &str, sources: &AuthSources) -> Result<Vec<PathBuf>, AuthError> {
    let path = sources.docker_config.clone().ok_or(AuthError::NoHome)?;
    let mut file = read_auth_file(&path)?;
    let key = login_key(registry);
    let mut removed = Vec::new();
    if let Some(helper) = file.cred_helpers.get(&key).or(file.creds_store.as_ref())
        && erase_with_helper(helper, &key)?
    {
        removed.push(PathBuf::from(format!("docker-credential-{helper}")));
    }
    let before = file.auths.len();
    for k in keys_for(registry) {
        file.auths.remove(&k);
    }
    if file.auths.len() != before {
        write_auth_file(&path, &file)?;
        removed.push(path);
    }
    Ok(removed)
}

/// Runs `docker-credential-HELPER erase` for `key`; false when the helper held nothing for it.
fn erase_with_helper(helper: &str, key: &str) -> Result<bool, AuthError> {
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("erase")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(key.as_bytes())
            .map_err(AuthError::helper(helper, "did not take the server"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if out.status.success() {
        return Ok(true);
    }
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let said: String = said.trim().chars().take(300).collect();
    // The helpers' answer for a server they hold nothing for.
    if said.contains("not found") {
        return Ok(false);
    }
    Err(AuthError::Helper {
        helper: helper.to_string(),
        what: format!("`erase` failed ({}): {said}", out.status),
        source: None,
    })
}

/// Runs `docker-credential-HELPER store` with the login on its stdin.
fn store_with_helper(
    helper: &str,
    key: &str,
    username: &str,
    password: &str,
) -> Result<(), AuthError> {
    let payload = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("store")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(payload.to_string().as_bytes())
            .map_err(AuthError::helper(helper, "did not take the login"))?;
    }
    let status = child
        .wait()
        .map_err(AuthError::helper(helper, "cannot be run"))?;
    if status.success() {
        Ok(())
    } else {
        Err(AuthError::Helper {
            helper: helper.to_string(),
            what: format!("`store` failed ({status})"),
            source: None,
        })
    }
}

/// Replaces an auth file with `file`, readable by its owner only.
fn write_auth_file(path: &Path, file: &AuthFile) -> Result<(), AuthError> {
    // A struct of strings and maps always serializes.
    let mut bytes = serde_json::to_vec_pretty(file).unwrap_or_default();
    bytes.push(b'\n');
    crate::atomic::write_secret(path, &bytes).map_err(AuthError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_entries_and_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"127.0.0.1:5000":{{"identitytoken":"tok"}}}}}}"#),
        )
        .unwrap();
        assert_eq!(
            from_file(&path, "docker.io").unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            from_file(&path, "127.0.0.1:5000").unwrap(),
            Some(Credential::IdentityToken("tok".into()))
        );
        assert_eq!(from_file(&path, "ghcr.io").unwrap(), None);
        assert!(!format!("{:?}", from_file(&path, "docker.io").unwrap()).contains("s3cret"));
    }

    #[test]
    fn sources_come_from_the_env_given_not_the_process() {
        let env = crate::env::Env::new(
            [
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1"),
                ("CONDA_DOCKER_REGISTRY_USERNAME", "bob"),
                ("CONDA_DOCKER_REGISTRY_PASSWORD", ""),
            ],
            "/",
        );
        let sources = AuthSources::from_env(&env);
        assert_eq!(
            sources.environment, None,
            "an empty password is no credential"
        );
        assert_eq!(
            sources.podman_files,
            [PathBuf::from("/run/user/1/containers/auth.json")]
        );
        assert_eq!(
            sources.docker_config.as_deref(),
            Some(Path::new("/home/u/.docker/config.json"))
        );
        let env = env
            .with_var("DOCKER_CONFIG", "/etc/dc")
            .with_var("REGISTRY_AUTH_FILE", "/a.json")
            .with_var("CONDA_DOCKER_REGISTRY_PASSWORD", "pw");
        let sources = AuthSources::from_env(&env);
        assert_eq!(
            sources.docker_config.as_deref(),
            Some(Path::new("/etc/dc/config.json"))
        );
        assert_eq!(sources.podman_files[0], PathBuf::from("/a.json"));
        let (found, _) = lookup("example.org", None, &sources);
        assert_eq!(
            found,
            Some((
                Credential::Basic {
                    username: "bob".into(),
                    password: "pw".into()
                },
                "the environment".to_string()
            ))
        );
    }
}
