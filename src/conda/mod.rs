//! The conda side: channels, solving, installing into a staging prefix, and planning layers.
//!
//! Knows nothing of tar or OCI: its output is an installed prefix and, per package, the
//! files it owns ([`plan::LayerPlan`]).

pub mod channel;
pub mod env_file;
pub mod install;
pub mod lock;
pub mod plan;
pub mod prefix;
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
    /// Installing packages into the staging prefix failed.
    #[error("installing packages into the staging prefix")]
    Install(#[source] rattler::install::InstallerError),
    /// A file of the staging prefix could not be read or written.
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
    /// A locked package's hash differs from the channel's.
    #[error(
        "{package}: the lockfile's {kind} {locked} does not match the channel's {channel}; refusing to install it"
    )]
    HashMismatch {
        /// The package file.
        package: String,
        /// `sha256` or `md5`.
        kind: String,
        /// What the lockfile says.
        locked: String,
        /// What the channel's repodata says.
        channel: String,
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
