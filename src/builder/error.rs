//! What can go wrong building an image. A setting at fault is named by
//! [`Error::setting`], so each front end can say it in its own words.

use std::path::PathBuf;

use super::pypi;
use crate::request::Setting;
use crate::transport::LocationError;

/// What can go wrong building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No package specs were given.
    #[error(
        "no packages to install: give at least one package spec, e.g. `conda-docker build bzip2`"
    )]
    NoSpecs,
    /// The base image location does not parse.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Reading the base image failed.
    #[error("reading base image `{base}`")]
    Base {
        /// The base as given.
        base: String,
        /// The cause.
        #[source]
        source: Box<crate::transport::Error>,
    },
    /// The base image is for another platform.
    #[error(
        "base image `{base}` is for {found}, but --platform {subdir} needs {wanted}: pick a base for {wanted}"
    )]
    BasePlatform {
        /// The base as given.
        base: String,
        /// The base's platform (`linux/arm64/v8`).
        found: String,
        /// The platform the packages need.
        wanted: String,
        /// The conda subdir asked for.
        subdir: String,
    },
    /// Resolving or installing packages failed.
    #[error(transparent)]
    Conda(#[from] crate::conda::Error),
    /// An image setting is invalid.
    #[error(transparent)]
    Settings(#[from] crate::settings::Error),
    /// The user to add clashes with the base's users
    /// ([`crate::image::Error::UserTaken`]).
    #[error("--user: {0}")]
    User(#[source] crate::image::Error),
    /// The host files of an `--add` cannot go into the image.
    #[error("--add {add}")]
    AddFiles {
        /// The `--add` at fault, `SRC:DEST`.
        add: String,
        /// The cause.
        #[source]
        source: Box<crate::image::Error>,
    },
    /// The PyPI distributions cannot be installed.
    #[error(transparent)]
    Pypi(Box<pypi::PypiError>),
    /// What to build cannot be read.
    #[error(transparent)]
    Input(#[from] crate::input::Error),
    /// The default image name (after the environment's name) is no image reference.
    #[error(
        "the environment's name gives the image name `{name}`, which is not valid: name the image (`--image`)"
    )]
    ImageName {
        /// The name made.
        name: String,
        /// Why it is invalid.
        #[source]
        source: crate::image::reference::InvalidReference,
    },
    /// The layer budget leaves no room for the environment.
    #[error(
        "--max-layers {0}: an image needs at least 2 layers (the packages and the environment files)"
    )]
    MaxLayers(usize),
    /// Several platforms were to go into a lockfile in conda's explicit format.
    #[error(
        "--lock-output {}: conda's explicit format holds one platform; name a conda-lock file \
         (`.yml`) for several",
        path.display()
    )]
    LockOnePlatform {
        /// The lockfile.
        path: PathBuf,
    },
    /// PyPI distributions were to go into a lockfile in conda's explicit format.
    #[error(
        "--lock-output {}: conda's explicit format holds no PyPI packages; name a conda-lock \
         file (`.yml`)",
        path.display()
    )]
    LockNoPypi {
        /// The lockfile.
        path: PathBuf,
    },
    /// The SBOM directory cannot be written.
    #[error("--sbom-dir {}", path.display())]
    SbomDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output cannot be written.
    #[error(transparent)]
    Output(Box<crate::transport::OutputError>),
    /// The image config would be larger than readers of images take.
    #[error(
        "the image config would be {size} bytes, over the {cap} bytes images are read with \
         (inspect, a build on it as its base): shorten the variables, labels or other settings"
    )]
    ConfigTooLarge {
        /// Its size in bytes.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The request does not resolve.
    #[error(transparent)]
    Request(#[from] crate::request::Error),
    /// Building the layers failed, or the build was cancelled
    /// ([`crate::image::Error::Cancelled`]: the one way a cancellation is told).
    #[error(transparent)]
    Image(#[from] crate::image::Error),
}

impl From<crate::transport::OutputError> for Error {
    fn from(e: crate::transport::OutputError) -> Self {
        Self::Output(Box::new(e))
    }
}

impl From<crate::transport::registry::Unreachable> for Error {
    fn from(e: crate::transport::registry::Unreachable) -> Self {
        use crate::transport::registry::Unreachable;
        match e {
            Unreachable::Base { base, source } => Self::Base { base, source },
            Unreachable::Output(e) => e.into(),
        }
    }
}

impl From<pypi::PypiError> for Error {
    fn from(e: pypi::PypiError) -> Self {
        Error::Pypi(Box::new(e))
    }
}

impl Error {
    /// The build was cancelled.
    pub(crate) fn cancelled() -> Self {
        Self::Image(crate::image::Error::Cancelled)
    }

    /// True when the build stopped because it was cancelled: an [`crate::image::Error::Cancelled`]
    /// or a [`crate::Cancelled`] among its sources.
    pub fn is_cancelled(&self) -> bool {
        self.image_errors()
            .any(|e| matches!(e, crate::image::Error::Cancelled))
            || self.sources().any(|s| s.is::<crate::Cancelled>())
    }

    /// The blob of the blob cache found damaged, and why, when that is what stopped the build
    /// ([`crate::image::Error::StoredBlobDamaged`]).
    pub fn damaged_blob(&self) -> Option<(&crate::image::Digest, &str)> {
        self.image_errors().find_map(|e| match e {
            crate::image::Error::StoredBlobDamaged { digest, reason, .. } => {
                Some((digest, reason.as_str()))
            }
            _ => None,
        })
    }

    /// Every image-side error this one is or holds: where it wraps one directly, and wherever
    /// else one is in the source chain.
    fn image_errors(&self) -> impl Iterator<Item = &crate::image::Error> {
        let direct = match self {
            Self::Image(e) => Some(e),
            Self::Base { source, .. } => source.image_error(),
            Self::Output(e) => e.image_error(),
            _ => None,
        };
        direct.into_iter().chain(
            self.sources()
                .filter_map(|s| s.downcast_ref::<crate::image::Error>()),
        )
    }

    /// The chain of sources below this error.
    fn sources(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut source = std::error::Error::source(self);
        std::iter::from_fn(move || {
            let s = source?;
            source = s.source();
            Some(s)
        })
    }
}

impl Error {
    /// The setting at fault, if one is: the front end names it in its own words.
    pub fn setting(&self) -> Option<Setting> {
        match self {
            Self::BasePlatform { .. } => Some(Setting::Platform),
            Self::User(_) => Some(Setting::User),
            Self::ImageName { .. } => Some(Setting::Image),
            Self::MaxLayers(_) => Some(Setting::MaxLayers),
            Self::LockOnePlatform { .. } | Self::LockNoPypi { .. } => Some(Setting::LockOutput),
            Self::SbomDir { .. } => Some(Setting::SbomDir),
            Self::Request(e) => Some(e.setting),
            Self::AddFiles { .. } => Some(Setting::Add),
            _ => None,
        }
    }

    /// The message, naming the setting at fault in `words` (the command line's flags in
    /// [`std::fmt::Display`]).
    pub fn render(&self, words: crate::request::Words) -> String {
        let text = self.to_string();
        match (self, self.setting(), words) {
            (Self::Request(e), _, _) => e.render(words),
            // `--max-layers 1: ...` reads `max_layers=1: ...`; `--user: ...`, `user: ...`.
            (_, Some(s), crate::request::Words::Keywords) => {
                match text.replacen(&format!("{} ", s.flag()), s.keyword(), 1) {
                    same if same == text => {
                        text.replacen(s.flag(), s.keyword().trim_end_matches('='), 1)
                    }
                    replaced => replaced,
                }
            }
            _ => text,
        }
    }
}
