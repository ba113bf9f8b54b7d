//! The oci-archive: an OCI image layout in one tar file, as `skopeo copy oci-archive:` and
//! `podman save --format oci-archive` write it.
//!
//! Read in place (blobs are byte ranges of the archive, nothing is extracted); written like the
//! docker-archive, with layers compressed (gzip by default) and the tag as `org.opencontainers.image.ref.name`.

use std::path::Path;

use super::oci_layout;
use super::tarball::{ArchiveIndex, write_archive};
use super::{Location, Publishable, WriteContext, Written};
use crate::image::resolve::{IndexEntry, index};
use crate::image::{Error, Image, Platform, Result};

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

/// Writes the image `what` holds as an oci-archive at `path`, named `tag` if given, with
/// layers compressed as the context asks (an archive holds one platform: an index is
/// refused).
pub fn write(
    what: Publishable<'_>,
    path: &Path,
    tag: Option<&str>,
    ctx: &WriteContext<'_>,
) -> Result<Written> {
    let location = Location::OciArchive {
        path: path.to_path_buf(),
        tag: tag.map(str::to_string),
    };
    let encoding = ctx.options.encoding(&location);
    let image = what.single(path)?;
    let written = write_archive(image, path, encoding, ctx, |resolved| {
        let entry = IndexEntry::manifest(resolved).named(tag);
        Ok(vec![("index.json", index(&[entry]).to_bytes())])
    })?;
    Ok(Written::new(location, vec![written], None))
}
