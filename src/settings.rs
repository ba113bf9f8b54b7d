//! Image settings declared beside the environment (the `conda-docker:` key of an
//! `environment.yml`) and on the command line, merged once: the command line wins. What an
//! image was built from beyond its packages ([`Recorded`]) travels in a lockfile's comment
//! lines, so that the lockfile rebuilds the same image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::conda::place::Trim;
use crate::conda::plan::LayeringStrategy;
use crate::image::{ConfigFile, Image, LayerCompression};

/// An image setting the image could not run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} `{value}`: {reason}")]
pub struct Error {
    /// The setting, as the command line names it (`--user`, `--env`).
    pub setting: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong, and what to do.
    pub reason: String,
}

impl Error {
    fn new(setting: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// The largest uid or gid an image may use (as Linux and runc take them: a signed 32-bit int).
pub const MAX_ID: u32 = i32::MAX as u32;

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
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: String| Error::new("--user", s, reason);
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default().to_string();
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            && !name.starts_with('-');
        if !valid {
            return Err(err(
                "the user name must be lowercase letters, digits, `_` or `-` (NAME[:UID[:GID]])"
                    .into(),
            ));
        }
        let num = |p: Option<&str>, what: &str| -> Result<Option<u32>, Error> {
            p.map(|v| match v.parse::<u32>() {
                Ok(n) if n <= MAX_ID => Ok(n),
                Ok(_) => Err(err(format!("{what} {v} is out of range (0 to {MAX_ID})"))),
                Err(_) => Err(err(format!("{what} `{v}` is not a number"))),
            })
            .transpose()
        };
        let uid = num(parts.next(), "uid")?.unwrap_or(1000);
        let gid = num(parts.next(), "gid")?.unwrap_or(uid);
        if parts.next().is_some() {
            return Err(err("expected NAME[:UID[:GID]]".into()));
        }
        if uid == 0 {
            return Err(err("uid 0 is root; leave --user out to run as root".into()));
        }
        Ok(Self { name, uid, gid })
    }
}

/// How the image is set up beyond its environment (an environment file's `conda-docker:`
/// section, kebab-case; also part of a [`crate::request::BuildRequest`], snake_case, where
/// the request's own `target_prefix`, `layering_strategy`, `max_layers`, `trim` and
/// `compression` give the last five).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSettings {
    /// Extra environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The entrypoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// The working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Ports to expose (`8080`, `53/udp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// A user to create and run as, `NAME[:UID[:GID]]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether the user owns the prefix (so it can install into it).
    #[serde(alias = "writable_prefix", skip_serializing_if = "std::ops::Not::not")]
    pub writable_prefix: bool,
    /// Where the environment lives in the image (`--target-prefix`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_prefix: Option<PathBuf>,
    /// How packages are split into layers (`--layering-strategy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layering: Option<LayeringStrategy>,
    /// The most layers the image may have, the base's included (`--max-layers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_layers: Option<usize>,
    /// The groups of files left out, exactly (`[]` keeps everything; `--trim`, `--no-trim`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trim: Option<Vec<String>>,
    /// The layers' compression in OCI layouts, archives and registries (`--compression`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Host files put on top of the environment, one layer each (`--add SRC:DEST`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<AddFiles>,
    /// Whether the added files belong to the `user` rather than root (`--chown`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub chown: bool,
}

/// Host files put on top of the environment in a layer of their own, `SRC:DEST` (`--add`, an
/// environment file's `files:`): SRC a file or directory on the host (relative to the
/// working directory, or to the environment file that names it), DEST absolute in the image.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddFiles {
    /// The file or directory on the host.
    pub src: PathBuf,
    /// Where it goes in the image (absolute; ending in `/` puts a file SRC in that directory).
    pub dest: String,
}

impl AddFiles {
    /// The same, with a relative SRC taken from `dir`.
    pub fn relative_to(self, dir: &std::path::Path) -> Self {
        Self {
            src: dir.join(self.src),
            ..self
        }
    }
}

impl std::str::FromStr for AddFiles {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::new("--add", s, reason);
        let Some((src, dest)) = s.rsplit_once(':') else {
            return Err(err("expected SRC:DEST, e.g. `app:/srv/app`"));
        };
        if src.is_empty() || src.contains('\0') {
            return Err(err("SRC must name a file or directory on the host"));
        }
        let absolute = dest.starts_with('/');
        let dotdot = std::path::Path::new(dest)
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if !absolute || dotdot || dest.contains('\0') {
            return Err(err(
                "DEST must be an absolute path in the image without `..`, e.g. `/srv/app`",
            ));
        }
        Ok(Self {
            src: PathBuf::from(src),
            dest: dest.to_string(),
        })
    }
}

impl TryFrom<String> for AddFiles {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<AddFiles> for String {
    fn from(add: AddFiles) -> String {
        add.to_string()
    }
}

impl std::fmt::Display for AddFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.src.display(), self.dest)
    }
}

/// What an image was built from beyond its packages and platform: the environment's name, its
/// variables and the image settings, as an environment file declares them (`name:`,
/// `variables:`, `conda-docker:`). A lockfile carries it in comment lines, which conda,
/// conda-lock and pixi ignore, so that building the lockfile gives the same image.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// The environment's name (the SBOM's name, `CONDA_DEFAULT_ENV`, the default image name).
    pub name: Option<String>,
    /// The environment's variables.
    pub variables: BTreeMap<String, String>,
    /// The image settings.
    pub settings: ImageSettings,
}

/// The `created_by` of the history entry that holds an image's [`Recorded`] (as its comment).
pub const RECORDED_BY: &str = "conda-docker: the environment's name, variables and settings";

/// The comment line prefixes [`Recorded`] is written under, one line each.
const RECORDED_KEYS: [&str; 3] = ["# name: ", "# variables: ", "# conda-docker: "];

impl Recorded {
    /// The comment lines (each ending in a newline) that carry what is set, as JSON on one
    /// line each (`# conda-docker: {"cmd":["bzip2"]}`); nothing when nothing is set.
    pub fn comment_lines(&self) -> String {
        let mut text = String::new();
        let mut line = |key: &str, value: serde_json::Value| {
            text.push_str(key);
            text.push_str(&value.to_string());
            text.push('\n');
        };
        if let Some(name) = &self.name {
            line(RECORDED_KEYS[0], serde_json::json!(name));
        }
        if !self.variables.is_empty() {
            line(RECORDED_KEYS[1], serde_json::json!(self.variables));
        }
        if self.settings != ImageSettings::default()
            && let Ok(value) = serde_json::to_value(&self.settings)
        {
            line(RECORDED_KEYS[2], value);
        }
        text
    }

    /// What `image`'s history records (the entry [`RECORDED_BY`] made); `Ok(None)` when it
    /// records nothing.
    pub fn of_image(image: &Image) -> Result<Option<Self>, Error> {
        let entry = image
            .config()
            .history
            .iter()
            .rev()
            .find(|h| h.empty_layer && h.created_by.as_deref() == Some(RECORDED_BY));
        match entry.and_then(|h| h.comment.as_deref()) {
            Some(lines) => Self::from_comment_lines(lines),
            None => Ok(None),
        }
    }

    /// Reads the lines [`Self::comment_lines`] wrote from the comment lines that open `text`
    /// (a lockfile); `Ok(None)` when it has none.
    pub fn from_comment_lines(text: &str) -> Result<Option<Self>, Error> {
        let mut recorded = Self::default();
        let mut found = false;
        let leading = text
            .lines()
            .map(str::trim_end)
            .take_while(|l| l.starts_with('#') || l.is_empty());
        for l in leading {
            let bad = |e: serde_json::Error| Error::new("lockfile", l, format!("not JSON: {e}"));
            if let Some(v) = l.strip_prefix(RECORDED_KEYS[0]) {
                recorded.name = Some(serde_json::from_str(v).map_err(bad)?);
            } else if let Some(v) = l.strip_prefix(RECORDED_KEYS[1]) {
                recorded.variables = serde_json::from_str(v).map_err(bad)?;
            } else if let Some(v) = l.strip_prefix(RECORDED_KEYS[2]) {
                recorded.settings = serde_json::from_str(v).map_err(bad)?;
            } else {
                continue;
            }
            found = true;
        }
        Ok(found.then_some(recorded))
    }
}

/// The config file: `$CONDA_DOCKER_CONFIG` (which must be a file), else
/// `$XDG_CONFIG_HOME/conda-docker/config.toml` or `~/.config/conda-docker/config.toml` when
/// there is one, as `env` says.
pub fn config_file(env: &crate::env::Env) -> Result<Option<std::path::PathBuf>, Error> {
    if let Some(path) = env.path("CONDA_DOCKER_CONFIG") {
        if !path.is_file() {
            return Err(Error::new(
                "CONDA_DOCKER_CONFIG",
                path.display().to_string(),
                "names no file: point it at a config.toml, or unset it",
            ));
        }
        return Ok(Some(path));
    }
    Ok(env
        .config_home()
        .map(|d| d.join("conda-docker/config.toml"))
        .filter(|p| p.is_file()))
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
        self.target_prefix = cli.target_prefix.or(self.target_prefix);
        self.layering = cli.layering.or(self.layering);
        self.max_layers = cli.max_layers.or(self.max_layers);
        self.trim = cli.trim.or(self.trim);
        self.compression = cli.compression.or(self.compression);
        self.files.extend(cli.files);
        self.chown |= cli.chown;
        self
    }

    /// The files left out, when `trim` names them (exactly its groups).
    pub fn trim(&self) -> Result<Option<Trim>, Error> {
        self.trim
            .as_ref()
            .map(|groups| {
                groups
                    .iter()
                    .try_fold(Trim::NONE, |t, g| t.with_group(g.trim()))
                    .map_err(|reason| Error::new("trim", groups.join(","), reason))
            })
            .transpose()
    }

    /// The layers' compression, when `compression` names one.
    pub fn compression(&self) -> Result<Option<LayerCompression>, Error> {
        self.compression
            .as_deref()
            .map(|c| {
                c.parse::<LayerCompression>()
                    .map_err(|e| Error::new("compression", c, e.to_string()))
            })
            .transpose()
    }

    /// The user to create, parsed.
    pub fn user_spec(&self) -> Result<Option<UserSpec>, Error> {
        self.user.as_deref().map(str::parse).transpose()
    }

    /// Checks every setting is one an image can run with (as Docker would refuse it).
    pub fn validate(&self) -> Result<(), Error> {
        self.user_spec()?;
        self.trim()?;
        self.compression()?;
        if let Some(prefix) = &self.target_prefix {
            target_prefix(prefix)?;
        }
        if let Some(n) = self.max_layers
            && n < 2
        {
            return Err(Error::new(
                "max-layers",
                n.to_string(),
                "an image needs 2 layers at least: one for the packages, one for the files no \
                 package owns",
            ));
        }
        if self.chown && self.user.is_none() {
            return Err(Error::new(
                "--chown",
                "",
                "the added files go to the --user: name one (`--user app`)",
            ));
        }
        for (k, v) in &self.env {
            check_env("--env", k, v)?;
        }
        for (setting, map) in [
            ("--label", &self.labels),
            ("--annotation", &self.annotations),
        ] {
            for (k, v) in map {
                if k.is_empty() || k.contains(['\n', '\r', '\0']) || v.contains(['\n', '\r', '\0'])
                {
                    return Err(Error::new(
                        setting,
                        format!("{k}={v}"),
                        "keys and values cannot hold newlines or NUL",
                    ));
                }
            }
        }
        if let Some(w) = &self.workdir
            && (!w.starts_with('/') || w.contains('\0'))
        {
            return Err(Error::new(
                "--workdir",
                w,
                "the working directory must be an absolute path (`/data`)",
            ));
        }
        for port in &self.expose {
            check_port(port)?;
        }
        for (setting, command) in [("--entrypoint", &self.entrypoint), ("--cmd", &self.cmd)] {
            if let Some(c) = command
                && c.iter().any(|a| a.contains('\0'))
            {
                return Err(Error::new(
                    setting,
                    c.join(" "),
                    "arguments cannot hold NUL",
                ));
            }
        }
        Ok(())
    }

    /// Sets these settings in `image`'s config and annotations (not the user's files).
    pub fn apply(&self, image: &mut Image) -> Result<(), Error> {
        self.validate()?;
        let user = self.user_spec()?;
        let config: &mut ConfigFile = image.config_mut();
        let run = &mut config.config;
        run.set_env_vars(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
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

/// Checks an environment variable Docker would set: a key without `=`, whitespace or NUL, and
/// a value on one line.
pub fn check_env(setting: &'static str, key: &str, value: &str) -> Result<(), Error> {
    let entry = || format!("{key}={value}");
    if key.is_empty() || key.contains('=') || key.chars().any(|c| c.is_whitespace() || c == '\0') {
        return Err(Error::new(
            setting,
            entry(),
            "a variable's name cannot be empty or hold `=`, whitespace or NUL",
        ));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(Error::new(
            setting,
            entry(),
            "a variable's value cannot hold newlines or NUL",
        ));
    }
    Ok(())
}

/// Checks a port to expose: `PORT` or `PORT/tcp|udp|sctp`, PORT from 1 to 65535.
fn check_port(port: &str) -> Result<(), Error> {
    let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
    let valid_number = number.parse::<u16>().is_ok_and(|n| n > 0);
    if !valid_number || !matches!(protocol, "tcp" | "udp" | "sctp") {
        return Err(Error::new(
            "--expose",
            port,
            "expected PORT or PORT/PROTOCOL: a number from 1 to 65535, and tcp, udp or sctp",
        ));
    }
    Ok(())
}

/// Directories an environment must not be installed as: they belong to the base system.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/local/lib",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/lib",
];

/// The environment's prefix in the image, normalised (`//opt/./conda/` is `/opt/conda`): an
/// absolute path without `..`, and not a system directory such as `/` or `/usr`.
pub fn target_prefix(prefix: &std::path::Path) -> Result<std::path::PathBuf, Error> {
    use std::path::Component;
    let shown = prefix.display().to_string();
    let err = |reason: &str| Error::new("--target-prefix", shown.clone(), reason);
    if !prefix.is_absolute() {
        return Err(err("must be an absolute path, e.g. /opt/conda"));
    }
    let mut normal = std::path::PathBuf::from("/");
    for c in prefix.components() {
        match c {
            Component::Normal(part) => normal.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(err("must not hold `..`, e.g. /opt/conda"));
            }
        }
    }
    let text = normal.to_string_lossy();
    if text.contains(['\n', '\r', '\0', '\\']) || text.chars().any(char::is_whitespace) {
        return Err(err(
            "must not hold whitespace, backslashes or NUL (conda's prefix rules)",
        ));
    }
    if SYSTEM_DIRS.contains(&text.as_ref()) {
        return Err(err(
            "is a directory of the base system: the environment would mix with it; use a \
             directory of its own, e.g. /opt/conda",
        ));
    }
    Ok(normal)
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
        let e = "app:4294967295".parse::<UserSpec>().unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        assert!("app:1:2:3".parse::<UserSpec>().is_err());
    }

    #[test]
    fn target_prefixes_are_normalised_and_system_directories_refused() {
        use std::path::Path;
        for given in ["/opt/./conda", "//opt//conda", "/opt/conda/"] {
            assert_eq!(
                target_prefix(Path::new(given)).unwrap(),
                Path::new("/opt/conda")
            );
        }
        for bad in [
            "/",
            "/usr",
            "//usr/",
            "/etc",
            "opt/conda",
            "/opt/../etc",
            "/opt/my env",
        ] {
            let e = target_prefix(Path::new(bad)).unwrap_err();
            assert_eq!(e.setting, "--target-prefix", "{e}");
        }
    }

    #[test]
    fn settings_an_image_cannot_run_with_are_refused() {
        let refused = |s: ImageSettings, setting: &str| {
            let e = s.validate().unwrap_err();
            assert_eq!(e.setting, setting, "{e}");
        };
        refused(
            ImageSettings {
                workdir: Some("data".into()),
                ..Default::default()
            },
            "--workdir",
        );
        for port in ["abc", "0", "70000", "80/xyz"] {
            refused(
                ImageSettings {
                    expose: vec![port.into()],
                    ..Default::default()
                },
                "--expose",
            );
        }
        for (k, v) in [("A B", "1"), ("A=B", "1"), ("", "1"), ("A", "1\n2")] {
            refused(
                ImageSettings {
                    env: [(k.to_string(), v.to_string())].into(),
                    ..Default::default()
                },
                "--env",
            );
        }
        refused(
            ImageSettings {
                labels: [("a".to_string(), "x\ny".to_string())].into(),
                ..Default::default()
            },
            "--label",
        );
        refused(
            ImageSettings {
                annotations: [("a".to_string(), "x\ny".to_string())].into(),
                ..Default::default()
            },
            "--annotation",
        );
        ImageSettings {
            expose: vec!["8080".into(), "53/udp".into()],
            workdir: Some("/w".into()),
            env: [("A".to_string(), "x y".to_string())].into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn what_an_image_was_built_from_travels_in_comment_lines() {
        let settings: ImageSettings = serde_yaml::from_str(
            "cmd: [a]\nlabels: {team: \"x\\ny\"}\ntarget-prefix: /srv/env\nlayering: single\n\
             trim: []\ncompression: zstd:3\n",
        )
        .unwrap();
        let recorded = Recorded {
            name: Some("bar5env\n# name: \"evil\"".into()),
            variables: [("A".to_string(), "1".to_string())].into(),
            settings,
        };
        let lines = recorded.comment_lines();
        assert_eq!(
            lines.lines().count(),
            3,
            "one line each, newlines escaped: {lines}"
        );
        assert!(lines.lines().all(|l| l.starts_with("# ")), "{lines}");
        let text = format!("{lines}# platform: linux-64\n@EXPLICIT\n# name: \"late\"\n");
        assert_eq!(Recorded::from_comment_lines(&text).unwrap(), Some(recorded));
        assert_eq!(Recorded::from_comment_lines("@EXPLICIT\n").unwrap(), None);
        assert!(Recorded::from_comment_lines("# conda-docker: {\"nope\": 1}\n").is_err());
        assert!(Recorded::default().comment_lines().is_empty());
    }

    #[test]
    fn a_request_gives_the_layout_settings_by_its_own_keys() {
        let request: crate::request::BuildRequest = serde_json::from_str(
            r#"{"compression": "zstd", "trim": ["docs"], "max_layers": 9, "user": "app"}"#,
        )
        .unwrap();
        assert_eq!(
            (request.compression.as_str(), request.max_layers),
            ("zstd", 9)
        );
        assert_eq!(request.trim, ["docs"]);
        assert_eq!(request.image.user.as_deref(), Some("app"));
        assert_eq!(
            (request.image.compression, request.image.trim),
            (None, None)
        );
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
