//! Transports: where images are read from and written to.
//!
//! One module per format, each with its reader and writer side by side:
//! [`docker_archive`] (`docker save` tarballs), [`oci_layout`] (OCI image layout directories),
//! [`oci_archive`] (a layout in a tar) and [`registry`] (pull and push).
//! [`Location`] parses the `transport:path` strings the command line takes.
//!
//! Each transport has one write, `write(what, where, &WriteContext)` (`what` one image or an
//! index of them, as a [`Publishable`]), and the file transports one read,
//! `read(where, platform)`; [`write()`] and [`read()`] are the one dispatch over locations, and
//! [`write_all`] writes a build's images to all its outputs.

mod context;
pub mod docker_archive;
pub mod error;
pub mod oci_archive;
pub mod oci_layout;
pub mod outputs;
pub mod registry;
mod tarball;

pub use context::{Publishable, ReadContext, Remote, Session, WriteContext, WriteOptions};
pub use error::{Error, Result};
pub use outputs::{OutputError, Publish, check_outputs, write_all};

use std::fmt;
use std::path::PathBuf;

use crate::image::{Digest, Image, Reference, WrittenLayer};

/// Where an image is read from or written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The empty image.
    Scratch,
    /// A `docker save` tarball, optionally naming one image (`name:tag`) in it.
    DockerArchive {
        /// The tar file.
        path: PathBuf,
        /// Which image, for archives holding several.
        reference: Option<String>,
    },
    /// An OCI image layout in a tar file, optionally naming one image by its ref name.
    OciArchive {
        /// The tar file.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` to read or write.
        tag: Option<String>,
    },
    /// An OCI image layout directory, optionally naming one image by its ref name.
    OciLayout {
        /// The layout directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to read or write.
        tag: Option<String>,
    },
    /// An image in a registry.
    Registry(Reference),
}

/// Why a location string could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    /// The text is neither a known transport nor an image reference.
    #[error(
        "`{input}` is not an image location: use `scratch`, `docker-archive:PATH[:NAME:TAG]`, \
         `oci:DIR[:TAG]`, `oci-archive:PATH[:TAG]` or a registry reference such as \
         `debian:stable-slim` ({reason})"
    )]
    Unrecognised {
        /// The text given.
        input: String,
        /// Why the reference did not parse.
        reason: String,
    },
    /// The transport exists but is not supported in this direction.
    #[error("{0}")]
    Unsupported(String),
}

fn split_suffix(rest: &str) -> (PathBuf, Option<String>) {
    // `PATH:REF`: the whole text is a path when such a file exists; else split at the first `:`.
    if std::path::Path::new(rest).exists() {
        return (PathBuf::from(rest), None);
    }
    match rest.split_once(':') {
        Some((path, r)) if !r.is_empty() => (PathBuf::from(path), Some(r.to_string())),
        _ => (PathBuf::from(rest), None),
    }
}

impl Location {
    /// Parses an image source (`-b`): `scratch`, `docker-archive:`, `oci:` or a registry reference.
    pub fn parse_source(input: &str) -> Result<Self, LocationError> {
        if input == "scratch" {
            return Ok(Self::Scratch);
        }
        Self::parse_transport(input).unwrap_or_else(|| {
            input.parse::<Reference>().map(Self::Registry).map_err(|e| {
                LocationError::Unrecognised {
                    input: input.to_string(),
                    reason: e.reason,
                }
            })
        })
    }

    /// Parses an output (`-o`): a plain path (docker-archive), `docker-archive:`, `oci:` or `docker://REF`.
    pub fn parse_destination(input: &str) -> Result<Self, LocationError> {
        if let Some(reference) = input.strip_prefix("docker://") {
            return reference
                .parse::<Reference>()
                .map(Self::Registry)
                .map_err(|e| LocationError::Unrecognised {
                    input: input.to_string(),
                    reason: e.reason,
                });
        }
        if input == "scratch" {
            return Err(LocationError::Unsupported(
                "`scratch` is a base image, not an output".into(),
            ));
        }
        Self::parse_transport(input).unwrap_or_else(|| {
            Ok(Self::DockerArchive {
                path: PathBuf::from(input),
                reference: None,
            })
        })
    }

    fn parse_transport(input: &str) -> Option<Result<Self, LocationError>> {
        if let Some(rest) = input.strip_prefix("docker-archive:") {
            let (path, reference) = split_suffix(rest);
            return Some(Ok(Self::DockerArchive { path, reference }));
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            let (dir, tag) = split_suffix(rest);
            return Some(Ok(Self::OciLayout { dir, tag }));
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            let (path, tag) = split_suffix(rest);
            return Some(Ok(Self::OciArchive { path, tag }));
        }
        None
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scratch => write!(f, "scratch"),
            Self::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                reference.iter().try_for_each(|r| write!(f, ":{r}"))
            }
            Self::OciLayout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            Self::OciArchive { path, tag } => {
                write!(f, "oci-archive:{}", path.display())?;
                tag.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            Self::Registry(r) => write!(f, "{r}"),
        }
    }
}

impl Location {
    /// Checks, before any work is done, that an image can be written here.
    pub fn check_writable(&self) -> crate::image::Result<()> {
        use crate::image::Error;
        let fail = |path: &std::path::Path, reason: &str| {
            Err(Error::Output {
                path: path.to_path_buf(),
                reason: reason.to_string(),
            })
        };
        let parent_ok = |path: &std::path::Path| {
            let parent = crate::atomic::parent_dir(path);
            if parent.is_dir() {
                Ok(())
            } else {
                fail(
                    path,
                    &format!("directory `{}` does not exist", parent.display()),
                )
            }
        };
        match self {
            Location::DockerArchive { path, .. } | Location::OciArchive { path, .. } => {
                if path.as_os_str().is_empty() {
                    return fail(path, "no file named: give a path");
                }
                if path.is_dir() {
                    return fail(
                        path,
                        "it is a directory (use `oci:DIR` to write an OCI layout)",
                    );
                }
                // Writing replaces the file by rename: never a device, a pipe or a symlink.
                if let Ok(meta) = std::fs::symlink_metadata(path)
                    && !meta.file_type().is_file()
                {
                    return fail(
                        path,
                        "it exists and is not a regular file (a symlink, device or pipe); \
                         remove it or name another file",
                    );
                }
                parent_ok(path)
            }
            Location::OciLayout { dir, .. } if dir.as_os_str().is_empty() => {
                fail(dir, "no directory named: give `oci:DIR`")
            }
            Location::OciLayout { dir, .. } => {
                if dir.exists() && !dir.is_dir() {
                    return fail(dir, "it exists and is not a directory");
                }
                if dir.is_dir()
                    && !dir.join("index.json").exists()
                    && std::fs::read_dir(dir)
                        .map(|mut d| d.next().is_some())
                        .unwrap_or(true)
                {
                    return fail(
                        dir,
                        "it is a non-empty directory without an OCI layout's index.json",
                    );
                }
                parent_ok(dir)
            }
            Location::Registry(_) => Ok(()),
            Location::Scratch => fail(
                std::path::Path::new("scratch"),
                "`scratch` is not an output",
            ),
        }
    }
}

/// What writing one image produced.
#[derive(Clone, Debug)]
pub struct WrittenImage {
    /// Digest of the config blob (Docker's image ID).
    pub config_digest: Digest,
    /// Digest of the OCI manifest, when one was written.
    pub manifest_digest: Option<Digest>,
    /// The manifest's size in bytes, when one was written.
    pub manifest_size: Option<u64>,
    /// Each layer as written, bottom first.
    pub layers: Vec<WrittenLayer>,
}

impl WrittenImage {
    /// The descriptor of the manifest written, for referrers to name as their subject.
    pub fn manifest_descriptor(&self) -> Option<crate::image::manifest::Descriptor> {
        Some(crate::image::manifest::Descriptor {
            media_type: crate::image::media_type::OCI_MANIFEST.into(),
            digest: self.manifest_digest.clone()?,
            size: self.manifest_size?,
            annotations: Default::default(),
            platform: None,
            artifact_type: None,
        })
    }

    /// The image as [`crate::image::resolve`] made it, written.
    pub fn from_resolved(resolved: crate::image::resolve::ResolvedImage) -> Self {
        Self {
            config_digest: resolved.config_digest,
            manifest_digest: Some(resolved.manifest_digest),
            manifest_size: Some(resolved.manifest.len() as u64),
            layers: resolved.layers,
        }
    }
}

/// What one output received: one image, or an index of one image per platform.
#[derive(Clone, Debug)]
pub struct Written {
    /// The output.
    pub location: Location,
    /// Each image as written, in the order given.
    pub images: Vec<WrittenImage>,
    /// The index's digest, when several images went under one index.
    pub index: Option<Digest>,
    /// What a push to a registry transferred (the whole output's).
    pub push: Option<registry::PushStats>,
    /// The referrers attached, by their manifests' digests.
    pub referrers: Vec<Digest>,
}

impl Written {
    /// What a file transport wrote at `location`: `images`, under the index `index` if any.
    pub fn new(location: Location, images: Vec<WrittenImage>, index: Option<Digest>) -> Self {
        Self {
            location,
            images,
            index,
            push: None,
            referrers: Vec::new(),
        }
    }

    /// What identifies the output's content: the index's digest, else the image ID.
    pub fn id(&self) -> Option<&Digest> {
        self.index
            .as_ref()
            .or_else(|| self.images.first().map(|i| &i.config_digest))
    }

    /// The digest a registry serves the output by: the index's, else the manifest's.
    pub fn digest(&self) -> Option<&Digest> {
        self.index
            .as_ref()
            .or_else(|| self.images.first().and_then(|i| i.manifest_digest.as_ref()))
    }

    /// `REF@DIGEST` for a push, which is what CI pins.
    pub fn pushed(&self) -> Option<String> {
        match (&self.location, self.digest()) {
            (Location::Registry(reference), Some(digest)) if self.push.is_some() => {
                Some(format!("{}@{digest}", reference.familiar_tagged()))
            }
            _ => None,
        }
    }
}

/// Reads the image at `location`; an index is resolved to the entry for the context's
/// platform. Downloads from a registry, and their retries, are told to the context's reporter.
///
/// # Errors
/// [`Error::Image`] for what the image side finds: an [`image::Error::NotFound`] when the tag,
/// name or platform is not in an archive, layout or index (the message lists what is), an
/// [`image::Error::Invalid`] for a malformed archive or layout, an
/// [`image::Error::DigestMismatch`] for a blob whose bytes do not match, an
/// [`image::Error::Io`] for unreadable files. From a registry: [`Error::NotFound`] for a
/// missing tag or repository, [`Error::Unauthorized`] when it refuses, [`Error::Network`] when
/// it cannot be reached or a transfer fails after its retries, [`Error::Status`],
/// [`Error::Malformed`] or [`Error::Unexpected`] when it answers something unexpected,
/// [`Error::Blob`] when a blob from it fails its digest or cannot be cached, and
/// [`Error::NoRemote`] when the context has no registry settings.
///
/// [`image::Error::NotFound`]: crate::image::Error::NotFound
/// [`image::Error::Invalid`]: crate::image::Error::Invalid
/// [`image::Error::DigestMismatch`]: crate::image::Error::DigestMismatch
/// [`image::Error::Io`]: crate::image::Error::Io
pub async fn read(location: &Location, ctx: &ReadContext<'_>) -> Result<Image> {
    let platform = ctx.platform;
    match location {
        Location::Scratch => Ok(Image::scratch(platform)),
        Location::DockerArchive { path, reference } => Ok(registry::blocking(|| {
            docker_archive::read(path, reference.as_deref())
        })?),
        Location::OciLayout { dir, tag } => Ok(registry::blocking(|| {
            oci_layout::read(dir, tag.as_deref(), platform)
        })?),
        Location::OciArchive { path, tag } => Ok(registry::blocking(|| {
            oci_archive::read(path, tag.as_deref(), platform)
        })?),
        Location::Registry(reference) => registry::pull(reference, ctx).await,
    }
}

/// Writes `what` (one image, or an index of one image per platform) to `location`, named by
/// the context's tags (an OCI layout uses its own `:TAG`, or the first tag's; a registry its
/// reference's). Layers are checked against their digests and diff_ids as they stream; a
/// failed write leaves no output file and no registry tag.
///
/// # Errors
/// [`Error::Image`] with an [`image::Error::Output`] when the output cannot be used (an archive
/// asked to hold an index, `scratch`), an [`image::Error::DigestMismatch`] or
/// [`image::Error::Invalid`] when a layer read from the source is corrupt or unsafe,
/// [`image::Error::Cancelled`] when the context's cancel was set; for pushes also
/// [`Error::Unauthorized`], [`Error::Network`], [`Error::Status`], [`Error::Unexpected`],
/// [`Error::Blob`] and [`Error::NoRemote`].
///
/// [`image::Error::Output`]: crate::image::Error::Output
/// [`image::Error::DigestMismatch`]: crate::image::Error::DigestMismatch
/// [`image::Error::Invalid`]: crate::image::Error::Invalid
/// [`image::Error::Cancelled`]: crate::image::Error::Cancelled
pub async fn write(
    what: Publishable<'_>,
    location: &Location,
    ctx: &WriteContext<'_>,
) -> Result<Written> {
    ctx.session
        .reporter
        .stage_started(crate::reporter::Stage::Write, &location.to_string());
    ctx.options.warn(location, ctx.session.reporter);
    let written = match location {
        Location::DockerArchive { path, reference } => {
            let tags = archive_tags(path, reference.as_deref(), ctx.tags)?;
            let ctx = WriteContext {
                tags: &tags,
                ..*ctx
            };
            registry::blocking(|| docker_archive::write(what, path, &ctx))?
        }
        Location::OciLayout { dir, tag } => {
            let tag = layout_tag(tag, ctx.tags);
            registry::blocking(|| oci_layout::write(what, dir, tag.as_deref(), ctx))?
        }
        Location::OciArchive { path, tag } => {
            let tag = layout_tag(tag, ctx.tags);
            registry::blocking(|| oci_archive::write(what, path, tag.as_deref(), ctx))?
        }
        Location::Registry(reference) => registry::push(what, reference, ctx).await?,
        Location::Scratch => return Err(not_an_output().into()),
    };
    Ok(Written {
        location: location.clone(),
        ..written
    })
}

/// Attaches `artifacts` (an SBOM, ...) to the image manifest `subject` written at `location`,
/// as OCI 1.1 referrers: in a registry (through the tag fallback where the registry lacks the
/// referrers API) and in an OCI layout. Archives hold no referrers: nothing is written there.
/// Returns the artifact manifests' digests.
///
/// # Errors
/// As [`write()`].
pub async fn attach(
    subject: &crate::image::manifest::Descriptor,
    artifacts: &[crate::image::referrer::Artifact],
    location: &Location,
    ctx: &WriteContext<'_>,
) -> Result<Vec<crate::image::Digest>> {
    match location {
        Location::Registry(reference) => {
            registry::push_referrers(subject, artifacts, reference, ctx).await
        }
        Location::OciLayout { dir, .. } => Ok(registry::blocking(|| {
            oci_layout::add_referrers(subject, artifacts, dir)
        })?),
        _ => Ok(Vec::new()),
    }
}

/// The names a docker-archive gets: the one its location gives (`:NAME:TAG`) first, then
/// `tags`.
fn archive_tags(
    path: &std::path::Path,
    reference: Option<&str>,
    tags: &[Reference],
) -> crate::image::Result<Vec<Reference>> {
    let mut all = tags.to_vec();
    if let Some(r) = reference {
        let r = r
            .parse::<Reference>()
            .map_err(|e| crate::image::Error::Output {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        all.insert(0, r);
    }
    Ok(all)
}

/// The name of an image in an OCI layout or oci-archive: the one the location gives, else the
/// tag of the first image name.
fn layout_tag(tag: &Option<String>, tags: &[Reference]) -> Option<String> {
    tag.clone()
        .or_else(|| tags.first().map(|t| t.tag_or_latest().to_string()))
}

fn not_an_output() -> crate::image::Error {
    crate::image::Error::Output {
        path: "scratch".into(),
        reason: "`scratch` is not an output".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_destinations() {
        assert_eq!(
            Location::parse_source("scratch").unwrap(),
            Location::Scratch
        );
        assert_eq!(
            Location::parse_source("docker-archive:/nonexistent/base.tar:name:tag").unwrap(),
            Location::DockerArchive {
                path: "/nonexistent/base.tar".into(),
                reference: Some("name:tag".into())
            }
        );
        assert_eq!(
            Location::parse_destination("oci:/tmp/x-nonexistent:v1").unwrap(),
            Location::OciLayout {
                dir: "/tmp/x-nonexistent".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Location::parse_destination("out.tar").unwrap(),
            Location::DockerArchive {
                path: "out.tar".into(),
                reference: None
            }
        );
        match Location::parse_source("debian:stable-slim").unwrap() {
            Location::Registry(r) => assert_eq!(r.repository(), "library/debian"),
            other => panic!("{other:?}"),
        }
        assert!(Location::parse_source("Not A Ref").is_err());
    }
}
