//! The oci-archive: an OCI image layout in one tar file, as `skopeo copy oci-archive:` and
//! `podman save --format oci-archive` write it.
//!
//! Read in place (blobs are byte ranges of the archive, nothing is extracted); written like the
//! docker-archive, with layers compressed (gzip by default) and the tag as `org.opencontainers.image.ref.name`.

use std::path::Path;

use super::WrittenImage;
use super::blob_cache::BlobCache;
use super::oci_layout;
use super::tarball::{ArchiveIndex, write_archive};
use crate::image::resolve::{IndexEntry, index};
use crate::image::{Cancel, Encoding, Error, Image, Platform, Result};
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
    write_encoded(
        image,
        tag,
        path,
        Encoding::default(),
        cache,
        cancel,
        reporter,
    )
}

/// [`write_with_cache`], with layers in `encoding`'s compression.
pub fn write_encoded(
    image: &Image,
    tag: Option<&str>,
    path: &Path,
    encoding: Encoding,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    write_archive(image, path, encoding, cache, cancel, reporter, |resolved| {
        let entry = IndexEntry::manifest(resolved).named(tag);
        Ok(vec![("index.json", index(&[entry]).to_bytes())])
    })
}
