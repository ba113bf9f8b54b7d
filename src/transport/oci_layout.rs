//! The OCI image layout: a directory with `oci-layout`, `index.json` and `blobs/sha256/`.
//!
//! Reads layouts with several images, nested indexes and gzip/zstd/plain layers. Writes the
//! blobs [`resolve`] decides (new layers gzip-compressed by default), each cloned (reflinked) or copied
//! from the blob cache or written to a temporary file renamed to its digest when complete, and
//! `index.json` last (by rename), so the layout is never left pointing at a missing blob. Adding
//! an image keeps the others; a ref name already present is moved to the new image. An image's
//! referrers (its SBOMs) are blobs only, found through their `subject` ([`referrers`]): every
//! entry of `index.json` is an image to podman, skopeo and syft.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Location, Publishable, WriteContext, Written, WrittenImage};
use crate::atomic::AtomicFile;
use crate::image::layer::{FileRange, LayerSource};
use crate::image::manifest::{Descriptor, Index, Manifest, describe_all, for_platform, is_index};
use crate::image::resolve::{self, IndexEntry, PlacedBlob, ResolvedImage};
use crate::image::{
    Cancel, Compression, ConfigFile, Digest, Encoding, Error, Image, Layer, Platform, Result,
    WrittenLayer,
};
use crate::store::blobs::persist;

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// Where an OCI layout's files are: a directory, or a tar archive of one (oci-archive).
pub trait LayoutFiles {
    /// The directory or archive, for messages.
    fn location(&self) -> &Path;
    /// The bytes of a small file (`index.json`, a manifest, a config), by its path in the layout.
    fn read(&self, name: &str) -> Result<Vec<u8>>;
    /// Where the blob `digest` is stored.
    fn blob(&self, digest: &Digest) -> Result<FileRange>;
}

/// The files of a layout directory.
pub struct LayoutDir<'a>(pub &'a Path);

impl LayoutFiles for LayoutDir<'_> {
    fn location(&self) -> &Path {
        self.0
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.0.join(name);
        crate::capped::read_file(&path, crate::capped::JSON_CAP).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::invalid(self.0, format!("`{name}` is missing")),
            _ if crate::capped::is_too_large(&e) => Error::invalid(self.0, format!("`{name}` {e}")),
            _ => Error::io("reading", &path)(e),
        })
    }

    fn blob(&self, digest: &Digest) -> Result<FileRange> {
        let path = blob_path(self.0, digest);
        let size = fs::metadata(&path)
            .map_err(|_| Error::invalid(self.0, format!("blob {digest} is missing")))?
            .len();
        Ok(FileRange {
            path,
            offset: 0,
            size,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    files: &dyn LayoutFiles,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(files.location(), format!("{what}: {e}")))
}

/// Reads a blob named by `d`, checking its digest, and parses it as JSON.
fn read_blob_json<T: serde::de::DeserializeOwned>(
    files: &dyn LayoutFiles,
    d: &Descriptor,
) -> Result<T> {
    let name = format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex());
    let bytes = files.read(&name)?;
    let actual = Digest::of(&bytes);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: "digest",
            layer: format!("blob `{name}` of `{}`", files.location().display()),
            expected: d.digest.clone(),
            actual,
        });
    }
    parse(files, &format!("blob {}", d.digest), &bytes)
}

/// Reads one image from the layout at `dir`: the one named `tag`, or the only one; an index
/// entry is resolved to the manifest for `platform`.
pub fn read(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    if !dir.is_dir() {
        return Err(Error::invalid(
            dir,
            "not a directory holding an OCI image layout",
        ));
    }
    read_from(&LayoutDir(dir), tag, platform)
}

/// Reads one image from an OCI layout's files (see [`read`]).
pub fn read_from(files: &dyn LayoutFiles, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    let location = || files.location().display().to_string();
    let index: Index = parse(files, "index.json", &files.read("index.json")?)?;
    // Referrers (an SBOM beside an image) are listed too, under their fallback tag or with an
    // artifact type; they are not images to read.
    let images = index.manifests.iter().filter(|d| {
        d.artifact_type.is_none()
            && !d
                .ref_name()
                .is_some_and(crate::image::referrer::is_fallback_tag)
    });
    let candidates: Vec<&Descriptor> = match tag {
        Some(t) => images.filter(|d| d.ref_name() == Some(t)).collect(),
        None => images.collect(),
    };
    let mut descriptor = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::NotFound {
                location: location(),
                wanted: tag.unwrap_or("an image").to_string(),
                available: describe_all(&index.manifests),
            });
        }
        several => {
            // Several entries for one name: pick by platform, as from an index.
            let owned: Vec<Descriptor> = several.iter().map(|d| (*d).clone()).collect();
            for_platform(&owned, platform)
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    location: location(),
                    wanted: format!(
                        "a single image for {platform} (the layout holds several: add `:TAG`)"
                    ),
                    available: describe_all(&index.manifests),
                })?
        }
    };
    for _ in 0..8 {
        if !is_index(&descriptor.media_type) {
            return read_manifest(files, &descriptor);
        }
        let nested: Index = read_blob_json(files, &descriptor)?;
        descriptor = for_platform(&nested.manifests, platform)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                location: location(),
                wanted: format!("platform {platform}"),
                available: describe_all(&nested.manifests),
            })?;
    }
    Err(Error::invalid(
        files.location(),
        "indexes nested more than 8 deep",
    ))
}

fn read_manifest(files: &dyn LayoutFiles, descriptor: &Descriptor) -> Result<Image> {
    let here = files.location();
    let manifest: Manifest = read_blob_json(files, descriptor)?;
    let config: ConfigFile = read_blob_json(files, &manifest.config)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid(
            here,
            format!(
                "manifest {} lists {} layers but its config {} diff_ids",
                descriptor.digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let range = files.blob(&d.digest)?;
        if range.size != d.size {
            return Err(Error::invalid(
                here,
                format!(
                    "layer blob {} is {} bytes, the manifest says {}",
                    d.digest, range.size, d.size
                ),
            ));
        }
        let compression = Compression::from_media_type(&d.media_type).ok_or_else(|| {
            Error::invalid(
                here,
                format!(
                    "layer {} has unsupported media type `{}`",
                    d.digest, d.media_type
                ),
            )
        })?;
        layers.push(Layer::from_blob(
            LayerSource::Blob {
                range,
                compression,
                digest: Some(d.digest.clone()),
            },
            Some(diff_id.clone()),
            format!("layer {} of {}", d.digest, here.display()),
        ));
    }
    let mut image = Image::from_parts(config, layers).map_err(|r| Error::invalid(here, r))?;
    *image.annotations_mut() = manifest.annotations;
    Ok(image)
}

/// Writes `bytes` as a blob of the layout, unless it is already there.
fn write_blob(dir: &Path, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::of(bytes);
    let path = blob_path(dir, &digest);
    if !path.exists() {
        crate::atomic::write(&path, bytes).map_err(Error::io("writing", &path))?;
    }
    Ok(digest)
}

/// Attaches `artifacts` to the manifest `subject` in the layout at `dir` as OCI 1.1 referrers
/// kept as blobs only: each artifact's blobs and its manifest, whose `subject` names the image,
/// and no entry in `index.json`. Tools that read a layout (podman, skopeo, syft) take every
/// entry of `index.json` for an image, so a layout of one image stays a layout of one image;
/// [`referrers`] finds the artifacts through their subject. The `sha256-<hex>` index entry an
/// earlier version kept for `subject` is dropped from `index.json` (by rename). Returns the
/// artifact manifests' digests.
pub fn add_referrers(
    subject: &Descriptor,
    artifacts: &[crate::image::referrer::Artifact],
    dir: &Path,
) -> Result<Vec<Digest>> {
    use crate::image::referrer::{artifact_manifest, fallback_tag};
    let mut added = Vec::new();
    for artifact in artifacts {
        let made = artifact_manifest(artifact, subject);
        for (_, bytes) in &made.blobs {
            write_blob(dir, bytes)?;
        }
        write_blob(dir, &made.manifest)?;
        added.push(made.descriptor.digest);
    }
    let files = LayoutDir(dir);
    let mut index: Index = parse(&files, "index.json", &files.read("index.json")?)?;
    let tag = fallback_tag(&subject.digest);
    let before = index.manifests.len();
    index.manifests.retain(|d| d.ref_name() != Some(&tag));
    if index.manifests.len() != before {
        let index_path = dir.join("index.json");
        crate::atomic::write(&index_path, &index.to_bytes())
            .map_err(Error::io("writing", &index_path))?;
    }
    Ok(added)
}

/// The largest blob [`referrers`] reads to see whether it is an artifact manifest.
const REFERRER_MANIFEST_CAP: u64 = 64 * 1024;

/// The referrers of the manifest `subject` in the layout at `dir`, as [`add_referrers`] keeps
/// them: the descriptors (with their `artifactType`) of the image manifests among the layout's
/// blobs whose `subject` is `subject`, by digest. Only regular files of at most 64 KiB whose
/// bytes match their name are taken.
pub fn referrers(dir: &Path, subject: &Digest) -> Result<Vec<Descriptor>> {
    let blobs = dir.join("blobs").join(subject.algorithm());
    let entries = fs::read_dir(&blobs).map_err(Error::io("reading", &blobs))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("reading", &blobs))?;
        // A directory entry's metadata does not follow symlinks: only regular files count.
        let small = entry
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() <= REFERRER_MANIFEST_CAP);
        let name = format!(
            "{}:{}",
            subject.algorithm(),
            entry.file_name().to_string_lossy()
        );
        if let (true, Ok(digest)) = (small, name.parse::<Digest>())
            && let Some(d) = referrer_of(&entry.path(), digest, subject)
        {
            found.push(d);
        }
    }
    found.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(found)
}

/// The descriptor of the blob at `path` (named `digest`) if it is a manifest whose `subject` is
/// `subject`.
fn referrer_of(path: &Path, digest: Digest, subject: &Digest) -> Option<Descriptor> {
    let bytes = crate::capped::read_file(path, REFERRER_MANIFEST_CAP).ok()?;
    let manifest = serde_json::from_slice::<Manifest>(&bytes).ok()?;
    if manifest.subject.as_ref().map(|s| &s.digest) != Some(subject) || Digest::of(&bytes) != digest
    {
        return None;
    }
    Some(Descriptor {
        media_type: manifest
            .media_type
            .unwrap_or_else(|| crate::image::media_type::OCI_MANIFEST.into()),
        digest,
        size: bytes.len() as u64,
        annotations: manifest.annotations,
        platform: None,
        artifact_type: manifest.artifact_type,
    })
}

/// Writes `what` into the layout at `dir` (created if missing), named `tag` if given: one
/// image, or an index of them (one per platform). Layers are compressed as the context asks,
/// and taken from (and kept in) its blob store, whose blobs are reflinked into the layout
/// where the filesystem can, copied otherwise. A layout this creates is removed on failure.
pub fn write(
    what: Publishable<'_>,
    dir: &Path,
    tag: Option<&str>,
    ctx: &WriteContext<'_>,
) -> Result<Written> {
    let location = Location::OciLayout {
        dir: dir.to_path_buf(),
        tag: tag.map(str::to_string),
    };
    let encoding = ctx.options.encoding(&location);
    let parent = crate::atomic::parent_dir(dir);
    crate::atomic::remove_stale(parent);
    crate::atomic::remove_stale(&dir.join("blobs/sha256"));
    let empty =
        !dir.exists() || fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    let (images, named) = if empty {
        // A new layout is made beside it and renamed into place whole: a kill leaves only a
        // temporary directory that the next run removes, never a half layout.
        let staging =
            crate::atomic::temp_dir_in(parent).map_err(Error::io("writing in", parent))?;
        let written = write_inner(what, staging.path(), tag, encoding, ctx)?;
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(staging.path(), mode).map_err(Error::io("writing", dir))?;
        match fs::rename(staging.path(), dir) {
            Ok(()) => {
                // The directory is in place now: nothing left for the guard to remove.
                let _ = staging.keep();
                written
            }
            // Another writer made the layout meanwhile: add to it (its blobs are cached now).
            Err(e) if dir.join("index.json").exists() => {
                tracing::debug!(
                    "`{}` appeared while it was written ({e}): adding to it",
                    dir.display()
                );
                drop(staging);
                write_inner(what, dir, tag, encoding, ctx)?
            }
            Err(e) => return Err(Error::io("writing", dir)(e)),
        }
    } else {
        // Adding to a layout: blobs first, index.json last by rename, so a kill leaves the
        // layout as it was (with at most some unreferenced blobs).
        write_inner(what, dir, tag, encoding, ctx)?
    };
    let index = matches!(what, Publishable::Index(_)).then_some(named);
    Ok(Written::new(location, images, index))
}

/// Writes `what` (the one image, or an index of them) and names it `tag`; returns the images
/// and the digest `tag` names.
fn write_inner(
    what: Publishable<'_>,
    dir: &Path,
    tag: Option<&str>,
    encoding: Encoding,
    ctx: &WriteContext<'_>,
) -> Result<(Vec<WrittenImage>, Digest)> {
    open_index(dir)?;
    let mut resolved = Vec::new();
    for image in what.images() {
        resolved.push(write_image(image, dir, encoding, ctx)?);
    }
    ctx.session
        .cancel
        .check()
        .map_err(Error::io("writing", dir))?;
    let entry = match (what, resolved.as_slice()) {
        (Publishable::Image(_), [one]) => IndexEntry::manifest(one),
        _ => {
            let bytes = resolve::platform_index(&resolved).to_bytes();
            write_blob(dir, &bytes)?;
            IndexEntry::index(&bytes)
        }
    };
    let descriptor = entry.named(tag).descriptor();
    let named = descriptor.digest.clone();
    add_to_index(dir, descriptor, tag, ctx)?;
    Ok((
        resolved
            .into_iter()
            .map(WrittenImage::from_resolved)
            .collect(),
        named,
    ))
}

/// Adds `descriptor` (named `tag`) to the layout's `index.json`, under a lock on the layout's
/// directory, read again once the lock is held: two writers each keep the other's entry. A
/// writer that must wait says so once.
fn add_to_index(
    dir: &Path,
    descriptor: Descriptor,
    tag: Option<&str>,
    ctx: &WriteContext<'_>,
) -> Result<()> {
    use rustix::fs::FlockOperation as Op;
    let lock = fs::File::open(dir).map_err(Error::io("locking", dir))?;
    if rustix::fs::flock(&lock, Op::NonBlockingLockExclusive).is_err() {
        ctx.session.reporter.warning(&format!(
            "waiting for another writer of `{}` to finish",
            dir.display()
        ));
        rustix::fs::flock(&lock, Op::LockExclusive)
            .map_err(|e| Error::io("locking", dir)(e.into()))?;
    }
    // Checked by `open_index` before the blobs went in; read again now, under the lock.
    let mut index = if dir.join("index.json").exists() {
        let files = LayoutDir(dir);
        parse(&files, "index.json", &files.read("index.json")?)?
    } else {
        resolve::index(&[])
    };
    if let Some(tag) = tag {
        index.manifests.retain(|d| d.ref_name() != Some(tag));
    } else {
        index
            .manifests
            .retain(|d| d.digest != descriptor.digest || d.ref_name().is_some());
    }
    index.manifests.push(descriptor);
    let index_path = dir.join("index.json");
    crate::atomic::write(&index_path, &index.to_bytes()).map_err(Error::io("writing", &index_path))
}

/// The `index.json` of the layout at `dir` (empty for a new layout), with `oci-layout` and
/// `blobs/sha256/` in place: refused for something else than a layout.
fn open_index(dir: &Path) -> Result<Index> {
    let output_err = |reason: String| Error::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(output_err("it exists and is not a directory".into()));
    }
    let index = if dir.join("index.json").exists() {
        let files = LayoutDir(dir);
        parse(&files, "index.json", &files.read("index.json")?)?
    } else {
        if dir.exists()
            && fs::read_dir(dir)
                .map_err(Error::io("reading", dir))?
                .next()
                .is_some()
        {
            return Err(output_err(
                "it is a non-empty directory without an OCI layout's index.json".into(),
            ));
        }
        resolve::index(&[])
    };
    fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| output_err(e.to_string()))?;
    let layout_file = dir.join("oci-layout");
    crate::atomic::write(&layout_file, OCI_LAYOUT_FILE)
        .map_err(Error::io("writing", &layout_file))?;
    Ok(index)
}

/// Places the blobs of `image` and writes its config and manifest.
fn write_image(
    image: &Image,
    dir: &Path,
    encoding: Encoding,
    ctx: &WriteContext<'_>,
) -> Result<ResolvedImage> {
    let (cancel, reporter) = (ctx.session.cancel, ctx.session.reporter);
    let resolution = resolve::resolve(image, encoding, ctx.session.blob_store());
    let total = resolution.layers.len();
    let mut layers = Vec::new();
    for (i, blob) in resolution.layers.iter().enumerate() {
        reporter.layer_started(i, total, blob.layer());
        let written = match blob.file(false, cancel)? {
            Some(placed) => {
                link_or_copy(dir, &placed, cancel)?;
                placed.written
            }
            None => stream_blob(dir, |out| blob.write_to(out, cancel))?,
        };
        reporter.layer_finished(i, blob.layer(), &written);
        layers.push(written);
    }
    let resolved = resolution.finish(layers);
    write_blob(dir, &resolved.config)?;
    write_blob(dir, &resolved.manifest)?;
    Ok(resolved)
}

/// Puts a blob on disk into the layout: a reflink (a copy-on-write clone, on btrfs, XFS and
/// other filesystems that share extents) when it is a whole file on the layout's filesystem,
/// else a copy (by `copy_file_range`). Never a hard link: the layout's blob would be the blob
/// cache's inode, and a tool rewriting a layout blob in place would change a cache blob that is
/// trusted by its name.
fn link_or_copy(dir: &Path, placed: &PlacedBlob, cancel: &Cancel) -> Result<()> {
    let path = blob_path(dir, &placed.written.digest);
    if path.exists() {
        return Ok(());
    }
    let file = AtomicFile::new(&path).map_err(Error::io("writing", &path))?;
    // A clone reads nothing, so it is made only of a regular file of the blob's size (no
    // symlink followed); a copy hashes what it reads.
    let whole = placed.range.offset == 0
        && fs::symlink_metadata(&placed.range.path)
            .is_ok_and(|m| m.is_file() && m.len() == placed.range.size);
    let cloned = whole
        && resolve::open_stored(&placed.range.path)
            .is_ok_and(|src| rustix::fs::ioctl_ficlone(file.file(), &src).is_ok());
    if !cloned {
        placed.copy_to(&mut file.file(), cancel)?;
    }
    file.commit().map_err(Error::io("writing", &path))
}

/// Streams a blob whose digest is known only once written into the layout.
fn stream_blob(
    dir: &Path,
    write: impl FnOnce(&mut BufWriter<&fs::File>) -> Result<WrittenLayer>,
) -> Result<WrittenLayer> {
    let blobs = dir.join("blobs/sha256");
    let temp = crate::atomic::temp_file_in(&blobs).map_err(Error::io("writing in", &blobs))?;
    let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
    let written = write(&mut out)?;
    out.flush().map_err(Error::io("writing", temp.path()))?;
    drop(out);
    let path = blob_path(dir, &written.digest);
    if !path.exists() {
        persist(temp, &path)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::LayerCompression;
    use crate::store::BlobCache;

    /// A layout at `dir/layout` holding one cached image, written uncompressed.
    fn one_image_layout(dir: &Path) -> (PathBuf, BlobCache, Written) {
        let cache = BlobCache::new(dir.join("cache"));
        let image = crate::store::blobs::tests::cached_image(&cache);
        let layout = dir.join("layout");
        let remote = super::super::Remote {
            options: Default::default(),
            cache: cache.clone(),
        };
        let cancel = Cancel::new();
        let options = super::super::WriteOptions {
            compression: LayerCompression::none(),
        };
        let ctx = super::super::Session::new(&cancel)
            .with_remote(&remote)
            .write(&[], options);
        let written = write(Publishable::Image(&image), &layout, None, &ctx).unwrap();
        (layout, cache, written)
    }

    #[test]
    fn a_layout_blob_is_not_the_cache_blob() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (layout, cache, written) = one_image_layout(dir.path());
        let digest = &written.images[0].layers[0].digest;
        let in_layout = layout.join("blobs/sha256").join(digest.hex());
        let in_cache = cache.blob_path(digest);
        assert_eq!(
            std::fs::read(&in_layout).unwrap(),
            std::fs::read(&in_cache).unwrap()
        );
        // A tool rewriting the layout's blob in place must not change the cache's.
        assert_ne!(
            std::fs::metadata(&in_layout).unwrap().ino(),
            std::fs::metadata(&in_cache).unwrap().ino()
        );
    }

    #[test]
    fn referrers_are_blobs_found_through_their_subject_not_index_entries() {
        use crate::image::referrer::{Artifact, fallback_tag};
        let dir = tempfile::tempdir().unwrap();
        let (layout, _cache, _) = one_image_layout(dir.path());
        let index_of = || -> Index {
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap()
        };
        let mut index = index_of();
        let subject = index.manifests[0].clone();
        // As an earlier version kept them: an index under the subject's fallback tag.
        let old = IndexEntry::index(&resolve::index(&[]).to_bytes())
            .named(Some(&fallback_tag(&subject.digest)))
            .descriptor();
        index.manifests.push(old);
        fs::write(layout.join("index.json"), index.to_bytes()).unwrap();
        let artifacts: Vec<Artifact> = ["application/spdx+json", "application/vnd.cyclonedx+json"]
            .iter()
            .map(|t| Artifact {
                artifact_type: t.to_string(),
                bytes: format!("{{\"type\":\"{t}\"}}").into_bytes(),
                annotations: Default::default(),
            })
            .collect();
        let mut added = add_referrers(&subject, &artifacts, &layout).unwrap();
        // Again: the same blobs, nothing more.
        assert_eq!(add_referrers(&subject, &artifacts, &layout).unwrap(), added);
        assert_eq!(
            index_of().manifests,
            vec![subject.clone()],
            "one image, one entry"
        );
        let found = referrers(&layout, &subject.digest).unwrap();
        added.sort();
        assert_eq!(
            found.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
            added
        );
        let mut types: Vec<_> = found
            .iter()
            .filter_map(|d| d.artifact_type.clone())
            .collect();
        types.sort();
        assert_eq!(
            types,
            ["application/spdx+json", "application/vnd.cyclonedx+json"]
        );
        // Nothing refers to an artifact manifest, and the image reads as the only one.
        assert!(referrers(&layout, &added[0]).unwrap().is_empty());
        read(&layout, None, &Platform::linux("amd64", None)).unwrap();
    }
}
