//! The image side's error type.

use std::path::PathBuf;

use super::digest::Digest;

/// What can go wrong reading, editing or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} `{}`", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a valid image in the format it claims to be.
    #[error("invalid image `{}`: {reason}", path.display())]
    Invalid {
        /// The archive or directory that was read.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested image or tag is not in the source.
    #[error("no image `{wanted}` in `{location}`; it holds: {available}")]
    NotFound {
        /// The archive, directory or repository that was searched.
        location: String,
        /// The name, tag or platform asked for.
        wanted: String,
        /// What the source offers instead.
        available: String,
    },
    /// A layer only a registry holds (found in a remote cache) was to be written elsewhere.
    #[error(
        "{layer} ({digest}) is held only by the registry `{registry}`, so it can be placed only \
         there; write this image to that registry, or build it without the remote cache"
    )]
    RemoteOnly {
        /// Which layer.
        layer: String,
        /// Its blob's digest.
        digest: Digest,
        /// The registry that holds it.
        registry: String,
    },
    /// A blob's bytes do not match the digest that names it.
    #[error("{what} of {layer}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// `digest` or `diff_id`.
        what: &'static str,
        /// Which layer or blob.
        layer: String,
        /// The digest the manifest or config promises.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// A layer read from an image holds an entry that is unsafe, or that readers would read
    /// differently.
    #[error("layer {digest} ({layer}) is refused")]
    UnsafeLayer {
        /// The layer's digest (its blob's, else its diff_id).
        digest: String,
        /// Which layer (`layer 2 of base.tar`).
        layer: String,
        /// What is wrong with it.
        #[source]
        source: Box<super::checked_tar::EntryError>,
    },
    /// A host file cannot go into a layer (a FIFO, socket or device; a name or
    /// `.dockerignore` that is not UTF-8, a bad pattern).
    #[error("`{}` {reason}", path.display())]
    HostFile {
        /// The file on the host.
        path: PathBuf,
        /// Why not, and what to do.
        reason: String,
    },
    /// The output could not be used.
    #[error("cannot write to `{}`: {reason}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A document (a manifest, an index, a tag list) is larger than what is read of one.
    #[error("{what} is larger than the {limit} bytes read of one")]
    TooLarge {
        /// What was sent (`a registry's manifest`).
        what: &'static str,
        /// The cap, in bytes.
        limit: u64,
    },
    /// A user to add clashes with one the image has.
    #[error("user {user}: the image's /etc/passwd already has `{entry}`; pick another name or uid")]
    UserTaken {
        /// `NAME:UID`, as asked for.
        user: String,
        /// The image's line that has the name or the uid.
        entry: String,
    },
    /// A blob the blob store named by its digest is damaged: missing, unreadable, not a regular
    /// file, shorter or longer than recorded, or holding other bytes. The builder drops it from
    /// the store and makes or fetches it again.
    #[error("the cached blob {digest} (`{}`) is damaged: {reason}", path.display())]
    StoredBlobDamaged {
        /// The blob's file in the store.
        path: PathBuf,
        /// The digest that names it.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation was cancelled (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| {
            if super::cancel::is_cancelled(&source) {
                Self::Cancelled
            } else {
                Self::Io {
                    action,
                    path,
                    source,
                }
            }
        }
    }

    /// An [`Error::HostFile`] for `path`.
    pub fn host(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::HostFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The image side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
