//! The oci-archive: an OCI image layout in one tar file, as `skopeo copy oci-archive:` and
//! `podman save --format oci-archive` write it.
//!
//! Read in place (blobs are byte ranges of the archive, nothing is extracted); written like the
//! docker-archive, with layers gzip-compressed and the tag as `org.opencontainers.image.ref.name`.

use std::path::Path;

use super::WrittenImage;
use super::blob_cache::BlobCache;
use super::oci_layout;
use super::tarball::{ArchiveIndex, write_archive};
use crate::image::manifest::{Index, REF_NAME};
use crate::image::{Cancel, Encoding, Error, Image, Platform, Result, media_type};
use crate::reporter::Reporter;

/// Reads one image from the oci-archive at `path` (see [`oci_layout::read`]).
pub fn read(path: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    let index = ArchiveIndex::read(path, "an oci-archive")?;
    if !index.contains("index.json") {
        return Err(Error::invalid(
            path,
            "it has no index.json, so it is not an oci-archive",
        ));
    }
    oci_layout::read_from(&index, tag, platform)
}

/// Writes `image` as an oci-archive at `path`, named `tag` if given.
pub fn write(
    image: &Image,
    tag: Option<&str>,
    path: &Path,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    write_with_cache(image, tag, path, None, cancel, reporter)
}

/// [`write()`], taking the compressed form of layers written before from `cache` (and keeping
/// new ones there), so an unchanged layer is not compressed again.
pub fn write_with_cache(
    image: &Image,
    tag: Option<&str>,
    path: &Path,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    write_archive(
        image,
        path,
        Encoding::KeepOrGzip,
        cache,
        cancel,
        reporter,
        |w| {
            let (digest, size) = &w.manifest;
            let mut descriptor = crate::image::manifest::Descriptor {
                media_type: media_type::OCI_MANIFEST.into(),
                digest: digest.clone(),
                size: *size,
                annotations: Default::default(),
                platform: None,
            };
            if let Some(tag) = tag {
                descriptor.annotations.insert(REF_NAME.into(), tag.into());
            }
            let index = Index {
                schema_version: 2,
                media_type: Some(media_type::OCI_INDEX.into()),
                manifests: vec![descriptor],
                annotations: Default::default(),
            };
            Ok(vec![("index.json", serde_json::to_vec(&index)?)])
        },
    )
}
