//! The process environment as a value: its variables and its current directory, read once by
//! a front end ([`Env::from_process`], called by the binary and the Python binding) and passed
//! down. Nothing else in the library reads `std::env` (`tests/architecture.rs` checks it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variables and the current directory, as read once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    cwd: PathBuf,
}

impl Env {
    /// An environment of `vars` with `cwd` as its current directory (for tests and embedders).
    pub fn new(
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
        cwd: impl Into<PathBuf>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            cwd: cwd.into(),
        }
    }

    /// This process's environment: the one place the library reads `std::env`. Variables that
    /// are not UTF-8 are left out; an unreadable current directory is `.`.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// The value of `name`, unless unset or empty (blank counts as empty).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The value of `name` as set, empty or not.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The first of `names` that is set and not empty.
    pub fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.var(n))
    }

    /// The value of `name` as a path, unless unset or empty.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.var(name).map(PathBuf::from)
    }

    /// The current directory the front end was started in.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// `$HOME`, unless unset or empty.
    pub fn home(&self) -> Option<PathBuf> {
        self.path("HOME")
    }

    /// The user's cache directory: `$XDG_CACHE_HOME`, else `$HOME/.cache`, else the system's
    /// temporary directory.
    pub fn cache_home(&self) -> PathBuf {
        self.path("XDG_CACHE_HOME")
            .or_else(|| self.home().map(|h| h.join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
    }

    /// The user's configuration directory: `$XDG_CONFIG_HOME`, else `$HOME/.config`.
    pub fn config_home(&self) -> Option<PathBuf> {
        self.path("XDG_CONFIG_HOME")
            .or_else(|| self.home().map(|h| h.join(".config")))
    }

    /// Sets `name` (for tests and embedders that fill an environment by hand).
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }
}
