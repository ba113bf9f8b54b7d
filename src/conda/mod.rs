//! The conda side: channels, solving, lockfiles, fetching packages, reading what they hold
//! ([`package_files`], [`contents`]), placing their files ([`place`]) and planning layers
//! ([`plan`]).
//!
//! Knows nothing of tar or OCI: it hands the builder records, checked package contents, where
//! each file goes and which packages share a layer.

pub mod archive;
pub mod channel;
pub mod contents;
pub mod env_file;
pub mod fetch;
pub mod layering;
pub mod lock;
pub mod package_files;
pub mod place;
pub mod placeholder;
pub mod plan;
pub mod prefix;
pub mod record;
pub mod solve;

use std::path::PathBuf;

pub use rattler_conda_types::{RepoDataRecord, Subdir};

/// What can go wrong on the conda side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A channel could not be understood or read.
    #[error("channel `{channel}`: {reason}")]
    Channel {
        /// The channel as given.
        channel: String,
        /// What is wrong.
        reason: String,
    },
    /// A package spec does not parse.
    #[error("invalid package spec `{spec}`: {reason}")]
    InvalidSpec {
        /// The spec as given.
        spec: String,
        /// The parser's explanation.
        reason: String,
    },
    /// The platform is not one conda-docker can build images for.
    #[error("platform `{platform}`: {reason}")]
    Platform {
        /// The platform as given.
        platform: String,
        /// Why not.
        reason: String,
    },
    /// Repodata could not be fetched or read.
    #[error("reading repodata from {channels}")]
    Repodata {
        /// The channels queried.
        channels: String,
        /// The cause.
        #[source]
        source: rattler_repodata_gateway::GatewayError,
    },
    /// No set of packages satisfies the specs.
    #[error("the specs cannot be satisfied:\n{explanation}")]
    Unsolvable {
        /// The solver's explanation.
        explanation: String,
    },
    /// A spec names a package no channel has.
    #[error("no package `{name}` in {channels}{}", did_you_mean(.suggestions))]
    NoSuchPackage {
        /// The name the spec gives.
        name: String,
        /// The channels searched.
        channels: String,
        /// The closest names the channels have, closest first.
        suggestions: Vec<String>,
    },
    /// A file could not be read or written.
    #[error("{action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A lockfile or environment file could not be used.
    #[error("`{}`: {reason}", path.display())]
    Lock {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column where known.
        reason: String,
    },
    /// A package breaks the rules every package path must follow.
    #[error(
        "package `{package}`: refusing `{path}`: {reason}; the package is not safe to put in an image"
    )]
    UnsafePackage {
        /// The package (`name-version-build`).
        package: String,
        /// The path it names.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A package's own `info/index.json` names another package than its record (from the
    /// channel's repodata or the lockfile) does.
    #[error(
        "package `{package}`: its info/index.json says it is `{found}`, but it was asked for as `{expected}`; refusing it"
    )]
    NameMismatch {
        /// The package as the record names it.
        package: String,
        /// The record's name.
        expected: String,
        /// The name in the package.
        found: String,
    },
    /// The config file (`~/.config/conda-docker/config.toml`) is not valid.
    #[error("config file `{}`: {reason}", path.display())]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A package could not be downloaded or extracted into the package cache.
    #[error("fetching package `{package}` from {url}")]
    Fetch {
        /// The package.
        package: String,
        /// Where from.
        url: String,
        /// The cause.
        #[source]
        source: rattler_cache::package_cache::PackageCacheError,
    },
    /// A package's archive could not be read, or holds what no package may.
    #[error("package `{package}`: reading its archive `{}`", archive.display())]
    Archive {
        /// The package.
        package: String,
        /// The archive.
        archive: PathBuf,
        /// The cause, naming the entry.
        #[source]
        source: std::io::Error,
    },
    /// A package's archive could not be downloaded.
    #[error("package `{package}`: downloading {url}")]
    Download {
        /// The package.
        package: String,
        /// Where from.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A package's archive is not what its record says (its sha256, md5 or size).
    #[error(
        "package `{package}`: the archive from {url} {what}; the channel or mirror serves another file than its repodata describes"
    )]
    Mismatch {
        /// The package.
        package: String,
        /// Where from.
        url: String,
        /// What differs (`has sha256 X where the record says Y`).
        what: String,
    },
    /// The package cache could not be locked.
    #[error("locking the package cache `{}`", path.display())]
    CacheLock {
        /// The cache directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rattler_cache::package_cache::PackageCacheError,
    },
    /// A package's path lies below another package's symlink or file.
    #[error(
        "package `{package}`: `{path}` lies below `{ancestor}`, which `{other}` ships as {kind}; refusing to route a file through it"
    )]
    PathConflict {
        /// The package shipping the path.
        package: String,
        /// The path.
        path: String,
        /// The package shipping the ancestor.
        other: String,
        /// The ancestor path.
        ancestor: String,
        /// `a symlink` or `a file`.
        kind: &'static str,
    },
    /// The package cache location could not be determined.
    #[error("no package cache directory: {0} (pass --cache-dir)")]
    CacheDir(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// The conda side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `; did you mean bzip2?` (or `bzip2 or bzip3?`) for the names closest to a missing one.
fn did_you_mean(suggestions: &[String]) -> String {
    match suggestions {
        [] => String::new(),
        [one] => format!("; did you mean {one}?"),
        [rest @ .., last] => format!("; did you mean {} or {last}?", rest.join(", ")),
    }
}

/// The root of the caches conda packages (`pkgs/`) and repodata are kept in for `cache_dir`
/// (as `--cache-dir` gives it): `cache_dir` itself, else rattler's shared cache (as pixi uses).
pub fn cache_root(cache_dir: Option<&std::path::Path>) -> Result<std::path::PathBuf> {
    match cache_dir {
        Some(d) => Ok(d.to_path_buf()),
        None => rattler_cache::default_cache_dir().map_err(|e| Error::CacheDir(e.to_string())),
    }
}
