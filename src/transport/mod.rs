//! Transports: where images are read from and written to.
//!
//! One module per format, each with its reader and writer side by side:
//! [`docker_archive`] (`docker save` tarballs), [`oci_layout`] (OCI image layout directories),
//! [`oci_archive`] (a layout in a tar) and [`registry`] (pull and push).
//! [`Location`] parses the `transport:path` strings the command line takes.

pub mod blob_cache;
pub mod docker_archive;
pub mod error;
pub mod oci_archive;
pub mod oci_layout;
pub mod outputs;
pub mod registry;
mod tarball;

pub use error::{Error, Result};
pub use outputs::{OutputError, Publish, Written, check_outputs, write_all};

use std::fmt;
use std::path::PathBuf;

use crate::image::{Digest, Reference, WrittenLayer};

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

/// What writing an image produced.
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
    /// What a push to a registry transferred.
    pub push: Option<registry::PushStats>,
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
            push: None,
        }
    }
}

/// How images are written, besides where.
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
    fn warn(&self, location: &Location, reporter: &dyn crate::reporter::Reporter) {
        if self.encoding(location).target().compression() == crate::image::Compression::Zstd {
            reporter.warning(&format!(
                "{location}: zstd layers cannot be pulled by Docker before 23.0 (podman,                  containerd 1.5+ and Docker 23+ can); use `--compression gzip` for older engines"
            ));
        }
    }
}

/// What writing a multi-platform image (an OCI index of one image per platform) produced.
#[derive(Clone, Debug)]
pub struct WrittenIndex {
    /// Digest of the index.
    pub digest: Digest,
    /// Each platform's image as written, in the index's order.
    pub images: Vec<WrittenImage>,
    /// What a push to a registry transferred.
    pub push: Option<registry::PushStats>,
}

/// Registry settings and the blob cache, for locations that are registries.
#[derive(Clone, Debug)]
pub struct Remote {
    /// How to reach and authenticate to the registry.
    pub options: registry::RegistryOptions,
    /// Where pulled and pushed blobs are kept.
    pub cache: registry::BlobCache,
}

impl Default for Remote {
    fn default() -> Self {
        Self {
            options: registry::RegistryOptions::default(),
            cache: registry::BlobCache::new(registry::BlobCache::default_dir()),
        }
    }
}

/// Reads the image at `location`; an index is resolved to the entry for `platform`.
///
/// # Errors
/// [`Error::Image`] for what the image side finds: an [`image::Error::NotFound`] when the tag,
/// name or platform is not in an archive, layout or index (the message lists what is), an
/// [`image::Error::Invalid`] for a malformed archive or layout, an
/// [`image::Error::DigestMismatch`] for a blob whose bytes do not match, an
/// [`image::Error::Io`] for unreadable files. From a registry: [`Error::NotFound`] for a
/// missing tag or repository, [`Error::Unauthorized`] when it refuses, [`Error::Network`] when
/// it cannot be reached or a transfer fails after its retries, [`Error::Status`],
/// [`Error::Malformed`] or [`Error::Unexpected`] when it answers something unexpected, and
/// [`Error::Blob`] when a blob from it fails its digest or cannot be cached.
///
/// [`image::Error::NotFound`]: crate::image::Error::NotFound
/// [`image::Error::Invalid`]: crate::image::Error::Invalid
/// [`image::Error::DigestMismatch`]: crate::image::Error::DigestMismatch
/// [`image::Error::Io`]: crate::image::Error::Io
pub async fn read(
    location: &Location,
    platform: &crate::image::Platform,
    remote: &Remote,
    cancel: &crate::image::Cancel,
) -> Result<crate::image::Image> {
    read_with(
        location,
        platform,
        remote,
        cancel,
        &crate::reporter::NoReporter,
    )
    .await
}

/// [`read`], telling `reporter` about downloads from a registry and their retries.
///
/// # Errors
/// As [`read`].
pub async fn read_with(
    location: &Location,
    platform: &crate::image::Platform,
    remote: &Remote,
    cancel: &crate::image::Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<crate::image::Image> {
    use crate::image::Image;
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
        Location::Registry(reference) => {
            registry::pull(
                reference,
                platform,
                &remote.options,
                &remote.cache,
                cancel,
                reporter,
            )
            .await
        }
    }
}

/// Writes `image` to `location`, tagged with `tags` (an OCI layout uses its own `:TAG`, or the
/// first tag's; a registry its reference's). Layers are checked against their digests and
/// diff_ids as they stream; a failed write leaves no output file and no registry tag.
///
/// # Errors
/// [`Error::Image`] with an [`image::Error::Output`] when the output cannot be used, an
/// [`image::Error::DigestMismatch`] or [`image::Error::Invalid`] when a layer read from the
/// source is corrupt or unsafe, [`image::Error::Cancelled`] when `cancel` was set; for pushes
/// also [`Error::Unauthorized`], [`Error::Network`], [`Error::Status`], [`Error::Unexpected`]
/// and [`Error::Blob`].
///
/// [`image::Error::Output`]: crate::image::Error::Output
/// [`image::Error::DigestMismatch`]: crate::image::Error::DigestMismatch
/// [`image::Error::Invalid`]: crate::image::Error::Invalid
/// [`image::Error::Cancelled`]: crate::image::Error::Cancelled
pub async fn write(
    image: &crate::image::Image,
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    cancel: &crate::image::Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<WrittenImage> {
    let options = WriteOptions::default();
    write_with(image, location, tags, remote, &options, cancel, reporter).await
}

/// [`write`], with layers compressed as `options` ask.
///
/// # Errors
/// As [`write`].
pub async fn write_with(
    image: &crate::image::Image,
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    options: &WriteOptions,
    cancel: &crate::image::Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<WrittenImage> {
    use crate::image::Error as ImageError;
    reporter.stage_started(crate::reporter::Stage::Write, &location.to_string());
    options.warn(location, reporter);
    let encoding = options.encoding(location);
    match location {
        Location::DockerArchive { path, reference } => {
            let mut tags = tags.to_vec();
            if let Some(r) = reference {
                let r = r.parse::<Reference>().map_err(|e| ImageError::Output {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                tags.insert(0, r);
            }
            Ok(registry::blocking(|| {
                docker_archive::write_with_cache(
                    image,
                    &tags,
                    path,
                    Some(&remote.cache),
                    cancel,
                    reporter,
                )
            })?)
        }
        Location::OciLayout { dir, tag } => {
            let tag = layout_tag(tag, tags);
            Ok(registry::blocking(|| {
                oci_layout::write_encoded(
                    image,
                    dir,
                    tag.as_deref(),
                    encoding,
                    Some(&remote.cache),
                    cancel,
                    reporter,
                )
            })?)
        }
        Location::OciArchive { path, tag } => {
            let tag = layout_tag(tag, tags);
            Ok(registry::blocking(|| {
                oci_archive::write_encoded(
                    image,
                    tag.as_deref(),
                    path,
                    encoding,
                    Some(&remote.cache),
                    cancel,
                    reporter,
                )
            })?)
        }
        Location::Registry(reference) => {
            let (mut written, stats) = registry::push(
                image,
                reference,
                &remote.options,
                &remote.cache,
                encoding,
                cancel,
                reporter,
            )
            .await?;
            written.push = Some(stats);
            Ok(written)
        }
        Location::Scratch => Err(not_an_output().into()),
    }
}

/// Attaches `artifacts` (an SBOM, ...) to the image manifest `subject` written at `location`,
/// as OCI 1.1 referrers: in a registry (through the tag fallback where the registry lacks the
/// referrers API) and in an OCI layout. Archives hold no referrers: nothing is written there.
/// Returns the artifact manifests' digests.
///
/// # Errors
/// As [`write`].
pub async fn attach(
    location: &Location,
    subject: &crate::image::manifest::Descriptor,
    artifacts: &[crate::image::referrer::Artifact],
    remote: &Remote,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<Vec<crate::image::Digest>> {
    match location {
        Location::Registry(reference) => {
            registry::push_referrers(
                reference,
                subject,
                artifacts,
                &remote.options,
                &remote.cache,
                reporter,
            )
            .await
        }
        Location::OciLayout { dir, .. } => Ok(registry::blocking(|| {
            oci_layout::add_referrers(dir, subject, artifacts)
        })?),
        _ => Ok(Vec::new()),
    }
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

/// Writes a multi-platform image, one image per platform under an OCI index, to `location`:
/// an OCI layout or a registry (a docker-archive or an oci-archive holds one platform).
///
/// # Errors
/// As [`write`]; an [`image::Error::Output`](crate::image::Error::Output) for a location that
/// holds one platform.
pub async fn write_index(
    images: &[&crate::image::Image],
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    cancel: &crate::image::Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<WrittenIndex> {
    let options = WriteOptions::default();
    write_index_with(images, location, tags, remote, &options, cancel, reporter).await
}

/// [`write_index`], with layers compressed as `options` ask.
///
/// # Errors
/// As [`write_index`].
pub async fn write_index_with(
    images: &[&crate::image::Image],
    location: &Location,
    tags: &[Reference],
    remote: &Remote,
    options: &WriteOptions,
    cancel: &crate::image::Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<WrittenIndex> {
    reporter.stage_started(crate::reporter::Stage::Write, &location.to_string());
    options.warn(location, reporter);
    let encoding = options.encoding(location);
    match location {
        Location::OciLayout { dir, tag } => {
            let tag = layout_tag(tag, tags);
            Ok(registry::blocking(|| {
                oci_layout::write_index_encoded(
                    images,
                    dir,
                    tag.as_deref(),
                    encoding,
                    Some(&remote.cache),
                    cancel,
                    reporter,
                )
            })?)
        }
        Location::Registry(reference) => {
            let (mut written, stats) = registry::push_index(
                images,
                reference,
                &remote.options,
                &remote.cache,
                encoding,
                cancel,
                reporter,
            )
            .await?;
            written.push = Some(stats);
            Ok(written)
        }
        Location::DockerArchive { path, .. } | Location::OciArchive { path, .. } => {
            Err(crate::image::Error::Output {
                path: path.clone(),
                reason: "an archive holds one platform: write several platforms to `oci:DIR` \
                         or push them to a registry"
                    .into(),
            }
            .into())
        }
        Location::Scratch => Err(not_an_output().into()),
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
