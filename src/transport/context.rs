//! What a read or a write needs besides what and where: the registry settings and blob store
//! ([`Remote`]), the layers' compression ([`WriteOptions`]), the names, cancellation and the
//! reporter, each given once as a context rather than as positional arguments.

use super::{Error, Location, Result, registry};
use crate::image::resolve::BlobStore;
use crate::image::{Cancel, Image, Platform, Reference};
use crate::reporter::{NoReporter, Reporter};
use crate::store::BlobCache;

/// What a write publishes: one image, or one image per platform under an OCI index.
#[derive(Clone, Copy, Debug)]
pub enum Publishable<'a> {
    /// One image.
    Image(&'a Image),
    /// A multi-platform image: the images, in the index's order.
    Index(&'a [&'a Image]),
}

impl<'a> Publishable<'a> {
    /// The images, in order.
    pub fn images(&self) -> &[&'a Image] {
        match self {
            Self::Image(image) => std::slice::from_ref(image),
            Self::Index(images) => images,
        }
    }

    /// The one image, or (for an index) an [`crate::image::Error::Output`] naming `path`: an
    /// archive holds one platform.
    pub(crate) fn single(&self, path: &std::path::Path) -> crate::image::Result<&'a Image> {
        match self {
            Self::Image(image) => Ok(image),
            Self::Index(_) => Err(crate::image::Error::Output {
                path: path.to_path_buf(),
                reason: "an archive holds one platform: write several platforms to `oci:DIR` \
                         or push them to a registry"
                    .into(),
            }),
        }
    }
}

/// Registry settings and the blob store, for locations that are registries (and the blob
/// store's compressed layers, for every write).
#[derive(Clone, Debug)]
pub struct Remote {
    /// How to reach and authenticate to the registry.
    pub options: registry::RegistryOptions,
    /// Where pulled and pushed blobs are kept.
    pub cache: BlobCache,
}

impl Remote {
    /// The registry settings `env` gives (its credentials and `certs.d`), and the default
    /// blob store under it.
    pub fn from_env(env: &crate::env::Env) -> Self {
        Self {
            options: registry::RegistryOptions::from_env(env),
            cache: crate::store::Store::at(None, env).blobs(),
        }
    }
}

/// How images are written, besides where: plain settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The compression of layer blobs in OCI layouts, oci-archives and registries (a
    /// docker-archive holds uncompressed tars, as `docker save` writes them). Stored layers in
    /// this compression are kept as they are; others are recompressed.
    pub compression: crate::image::LayerCompression,
}

impl WriteOptions {
    /// The encoding layers get at `location`.
    pub fn encoding(&self, location: &Location) -> crate::image::Encoding {
        match location {
            Location::DockerArchive { .. } | Location::Scratch => {
                crate::image::Encoding::Uncompressed
            }
            _ => crate::image::Encoding::Compressed(self.compression),
        }
    }

    /// Warns through `reporter` about what the encoding at `location` means for readers.
    pub(crate) fn warn(&self, location: &Location, reporter: &dyn Reporter) {
        if self.encoding(location).target().compression() == crate::image::Compression::Zstd {
            reporter.warning(&format!(
                "{location}: zstd layers cannot be pulled by Docker before 23.0 (podman,                  containerd 1.5+ and Docker 23+ can); use `--compression gzip` for older engines"
            ));
        }
    }
}

/// What every read and write of one run shares: the registry settings and blob store, the
/// cancellation and the reporter. [`Session::read`] and [`Session::write`] make the context of
/// one read or write from it.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    /// Registry settings and the blob store: pulled blobs and compressed layers are kept in
    /// (and trusted blobs found in) its cache; a pull or a push needs it.
    pub remote: Option<&'a Remote>,
    /// Stops the read or write.
    pub cancel: &'a Cancel,
    /// Told about each layer, each transfer and its retries.
    pub reporter: &'a dyn Reporter,
}

impl<'a> Session<'a> {
    /// A session with no registry settings or blob store, and nothing reported.
    pub fn new(cancel: &'a Cancel) -> Self {
        Self {
            remote: None,
            cancel,
            reporter: &NoReporter,
        }
    }

    /// This session, with registry settings and a blob store.
    pub fn with_remote(self, remote: &'a Remote) -> Self {
        Self {
            remote: Some(remote),
            ..self
        }
    }

    /// This session, telling `reporter` about progress.
    pub fn with_reporter(self, reporter: &'a dyn Reporter) -> Self {
        Self { reporter, ..self }
    }

    /// The context of a read for `platform`.
    pub fn read(self, platform: &'a Platform) -> ReadContext<'a> {
        ReadContext {
            platform,
            session: self,
        }
    }

    /// The context of a write naming the images `tags`, compressed as `options` ask.
    pub fn write(self, tags: &'a [Reference], options: WriteOptions) -> WriteContext<'a> {
        WriteContext {
            tags,
            options,
            session: self,
        }
    }

    /// The blob store, as the image side's resolver takes it.
    pub(crate) fn blob_store(&self) -> Option<&'a dyn BlobStore> {
        self.remote.map(|r| &r.cache as &dyn BlobStore)
    }

    /// The registry settings and blob store, which a pull from or a push to `location` needs.
    pub(crate) fn remote_for(&self, location: &dyn std::fmt::Display) -> Result<&'a Remote> {
        self.remote.ok_or_else(|| Error::NoRemote {
            location: location.to_string(),
        })
    }
}

/// Everything a write needs besides what and where.
#[derive(Clone, Copy)]
pub struct WriteContext<'a> {
    /// The names the images go by: a docker-archive's `RepoTags`, an OCI layout's tag when its
    /// location gives none (a registry uses its reference's).
    pub tags: &'a [Reference],
    /// How layers are compressed.
    pub options: WriteOptions,
    /// The registry settings, blob store, cancellation and reporter.
    pub session: Session<'a>,
}

/// Everything a read needs besides where.
#[derive(Clone, Copy)]
pub struct ReadContext<'a> {
    /// The platform an index is resolved to.
    pub platform: &'a Platform,
    /// The registry settings, blob store, cancellation and reporter.
    pub session: Session<'a>,
}
