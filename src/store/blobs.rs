//! A content-addressed store of pulled, pushed and compressed blobs, so a second build transfers
//! and compresses nothing.
//!
//! `blobs/sha256/<hex>` and `manifests/sha256/<hex>` under one directory, and
//! `diff-ids/sha256/<hex>-<compression>` (`-gzip-1`, `-zstd-3`, `-none`): which stored blob is
//! the layer with that diff_id in that compression at that level, so a layer written before is
//! not compressed again and a gzip blob is never served for a zstd write. A blob enters the
//! store only after its bytes were hashed and matched its digest (temporary file, then rename),
//! so every file in it can be trusted by name ([`BlobStore::holds`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::layer::FileRange;
use crate::image::resolve::{BlobStore, PlacedBlob, needs_compression};
use crate::image::{
    Cancel, Digest, Encoding, Error, Layer, LayerCompression, Result, WrittenLayer,
};

/// The blob store ([`super::Store::blobs`]).
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn bucket(&self, kind: &str) -> PathBuf {
        self.dir.join(kind).join("sha256")
    }

    /// Removes temporaries that killed runs left in the store (see [`crate::atomic`]).
    pub fn remove_stale(&self) -> usize {
        ["blobs", "manifests", "diff-ids", "layer-keys"]
            .iter()
            .map(|kind| crate::atomic::remove_stale(&self.bucket(kind)))
            .sum()
    }

    /// Where the blob with `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.bucket("blobs").join(digest.hex())
    }

    /// The stored manifest with `digest`, if any.
    pub fn manifest(&self, digest: &Digest) -> Option<Vec<u8>> {
        std::fs::read(self.bucket("manifests").join(digest.hex())).ok()
    }

    /// Stores manifest bytes under their digest.
    pub fn put_manifest(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let dir = self.bucket("manifests");
        let path = dir.join(digest.hex());
        if !path.exists() {
            crate::atomic::write(&path, bytes).map_err(Error::io("writing", &path))?;
        }
        Ok(digest)
    }

    fn compressed_path(&self, diff_id: &Digest, compression: LayerCompression) -> PathBuf {
        self.bucket("diff-ids")
            .join(format!("{}-{}", diff_id.hex(), compression.key()))
    }

    /// The blob stored earlier for the layer with `diff_id` in `compression` (at its level), if
    /// it is still there.
    pub fn compressed(
        &self,
        diff_id: &Digest,
        compression: LayerCompression,
    ) -> Option<WrittenLayer> {
        let bytes = std::fs::read(self.compressed_path(diff_id, compression)).ok()?;
        let written: WrittenLayer = serde_json::from_slice(&bytes).ok()?;
        let size = std::fs::metadata(self.blob_path(&written.digest))
            .ok()?
            .len();
        crate::atomic::touch(&self.blob_path(&written.digest));
        (written.diff_id == *diff_id
            && written.compression == compression.compression()
            && size == written.size)
            .then_some(written)
    }

    /// Records that `written` is its diff_id's layer in `compression` (its blob is in the store).
    pub fn remember_compressed(
        &self,
        written: &WrittenLayer,
        compression: LayerCompression,
    ) -> Result<()> {
        let path = self.compressed_path(&written.diff_id, compression);
        let bytes =
            serde_json::to_vec(written).map_err(|e| Error::io("writing", &path)(e.into()))?;
        crate::atomic::write(&path, &bytes).map_err(Error::io("writing", &path))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layer made before from the inputs `key` names, if its tar is still stored.
    pub fn keyed_layer(&self, key: &Digest) -> Option<KeyedLayer> {
        let bytes = std::fs::read(self.bucket("layer-keys").join(key.hex())).ok()?;
        let layer: KeyedLayer = serde_json::from_slice(&bytes).ok()?;
        let blob = self.blob_path(&layer.diff_id);
        let size = std::fs::metadata(&blob).ok()?.len();
        // Mark both as used, for `cache prune --older-than`.
        crate::atomic::touch(&self.bucket("layer-keys").join(key.hex()));
        crate::atomic::touch(&blob);
        (size == layer.size).then_some(layer)
    }

    /// Stores the uncompressed layer tar `write` makes as a blob (named by its diff_id, hashed
    /// on the way) and, when given, remembers it under the inputs' `key`. Nothing is visible
    /// until the tar is complete.
    pub fn put_layer(
        &self,
        key: Option<&Digest>,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<KeyedLayer> {
        let temp = self.temp_blob()?;
        let temp_path = temp.path().to_path_buf();
        let mut out = crate::image::digest::HashingWriter::new(std::io::BufWriter::with_capacity(
            1 << 20,
            temp.as_file(),
        ));
        write(&mut out).map_err(Error::io("writing layer", &temp_path))?;
        let (diff_id, size, mut buffered) = out.finish();
        buffered
            .flush()
            .map_err(Error::io("writing layer", &temp_path))?;
        drop(buffered);
        self.commit(temp, &diff_id)?;
        let layer = KeyedLayer { diff_id, size };
        if let Some(key) = key {
            let path = self.bucket("layer-keys").join(key.hex());
            let bytes =
                serde_json::to_vec(&layer).map_err(|e| Error::io("writing", &path)(e.into()))?;
            crate::atomic::write(&path, &bytes).map_err(Error::io("writing", &path))?;
        }
        Ok(layer)
    }

    /// [`Self::put_layer`] for a layer known by its bytes alone (host files): the tar `write`
    /// makes is hashed first, and written into the store only when no blob has that diff_id,
    /// so an unchanged layer costs one read of its files and no write. `source` names where
    /// the files are, in errors.
    pub fn put_layer_by_content(
        &self,
        source: &Path,
        write: impl Fn(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<KeyedLayer> {
        let mut hashed = crate::image::digest::HashingWriter::new(std::io::sink());
        write(&mut hashed).map_err(Error::io("reading", source))?;
        let (diff_id, size, _) = hashed.finish();
        let stored = std::fs::metadata(self.blob_path(&diff_id)).is_ok_and(|m| m.len() == size);
        if stored {
            crate::atomic::touch(&self.blob_path(&diff_id));
            return Ok(KeyedLayer { diff_id, size });
        }
        self.put_layer(None, write)
    }

    /// A temporary file in the blob bucket, to be [`BlobCache::commit`]ted.
    pub fn temp_blob(&self) -> Result<tempfile::NamedTempFile> {
        self.temp_in(&self.bucket("blobs"))
    }

    fn temp_in(&self, dir: &Path) -> Result<tempfile::NamedTempFile> {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        crate::atomic::temp_file_in(dir).map_err(Error::io("writing in", dir))
    }

    /// Moves a fully written and verified temporary file into the store as `digest`.
    pub fn commit(&self, temp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf> {
        let path = self.blob_path(digest);
        if !path.exists() {
            persist(temp, &path)?;
        }
        Ok(path)
    }
}

/// An uncompressed layer tar in the store, found by the inputs it was made from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyedLayer {
    /// The tar's digest (its blob's name).
    pub diff_id: Digest,
    /// The tar's size.
    pub size: u64,
}

impl BlobCache {
    /// A layer's blob from an earlier write in `encoding`'s compression, found by the diff_id
    /// of its tar. `None` for a layer stored in that compression already (it is written as it
    /// is), or one not written so before.
    fn cached_compressed(
        &self,
        layer: &Layer,
        encoding: Encoding,
        cancel: &Cancel,
    ) -> Result<Option<WrittenLayer>> {
        if !needs_compression(layer, encoding) {
            return Ok(None);
        }
        // Compressing costs far more than making the tar: hash the tar when its diff_id is
        // unknown.
        let diff_id = match layer.diff_id() {
            Some(d) => d.clone(),
            None => {
                layer
                    .write_to(&mut std::io::sink(), Encoding::Uncompressed, cancel)?
                    .diff_id
            }
        };
        Ok(self.compressed(&diff_id, encoding.target()))
    }
}

impl BlobStore for BlobCache {
    /// Bytes the store checked against `digest` before naming them by it, to be trusted
    /// without hashing them again.
    fn holds(&self, range: &FileRange, digest: &Digest) -> bool {
        range.offset == 0
            && range.path == self.blob_path(digest)
            && std::fs::metadata(&range.path).is_ok_and(|m| m.len() == range.size)
    }

    /// The one from an earlier write when there is one (`reused`), else written now (checked as
    /// it streams) and kept for the next write.
    fn compressed_blob(
        &self,
        layer: &Layer,
        encoding: Encoding,
        cancel: &Cancel,
    ) -> Result<PlacedBlob> {
        let placed = |written: WrittenLayer, reused| PlacedBlob {
            range: FileRange {
                path: self.blob_path(&written.digest),
                offset: 0,
                size: written.size,
            },
            written,
            reused,
        };
        if let Some(written) = self.cached_compressed(layer, encoding, cancel)? {
            return Ok(placed(written, true));
        }
        let temp = self.temp_blob()?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
        let written = layer.write_to(&mut out, encoding, cancel)?;
        out.flush().map_err(Error::io("writing", temp.path()))?;
        drop(out);
        self.commit(temp, &written.digest)?;
        if needs_compression(layer, encoding) {
            self.remember_compressed(&written, encoding.target())?;
        }
        Ok(placed(written, false))
    }
}

/// Moves a finished temporary file whose name is known only once written (a blob named by its
/// digest) to `path`, with the mode [`crate::atomic`] gives every file.
pub(crate) fn persist(temp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(crate::atomic::FILE_MODE))
        .map_err(Error::io("writing", path))?;
    temp.persist(path)
        .map_err(|e| Error::io("writing", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::Compression;
    use crate::image::layer::LayerSource;
    use crate::image::manifest::Manifest;
    use crate::image::resolve::resolve;

    /// An image of one layer whose tar is `cache`'s own blob.
    pub(crate) fn cached_image(cache: &BlobCache) -> crate::image::Image {
        let stored = cache
            .put_layer(None, |w| {
                crate::image::layer_tar::write_layer_tar(
                    vec![crate::image::layer_tar::Entry {
                        path: "a".into(),
                        data: crate::image::layer_tar::EntryData::Bytes(b"a".repeat(4000)),
                        mode: 0o644,
                    }],
                    0,
                    w,
                    &Cancel::new(),
                )
            })
            .unwrap();
        let layer = Layer::from_blob(
            LayerSource::Blob {
                range: FileRange {
                    path: cache.blob_path(&stored.diff_id),
                    offset: 0,
                    size: stored.size,
                },
                compression: Compression::None,
                digest: Some(stored.diff_id.clone()),
            },
            Some(stored.diff_id),
            "cached",
        );
        let config = crate::image::ConfigFile {
            rootfs: crate::image::config::RootFs {
                diff_ids: vec![layer.diff_id().unwrap().clone()],
                ..Default::default()
            },
            ..Default::default()
        };
        crate::image::Image::from_parts(config, vec![layer]).unwrap()
    }

    #[test]
    fn a_cache_blob_is_trusted_and_others_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let image = cached_image(&cache);
        let plain = resolve(&image, Encoding::Uncompressed, Some(&cache));
        assert!(plain.layers[0].known().is_some(), "a cache tar is stored");
        let outside = resolve(&image, Encoding::Uncompressed, None);
        assert!(
            outside.layers[0].known().is_none(),
            "without the cache it is checked"
        );
        let zstd = resolve(
            &image,
            Encoding::Compressed(LayerCompression::zstd(3)),
            Some(&cache),
        );
        let mut out = Vec::new();
        let written = zstd.layers[0].write_to(&mut out, &Cancel::new()).unwrap();
        assert_eq!(written.compression, Compression::Zstd);
        let gzip = resolve(
            &image,
            Encoding::Compressed(LayerCompression::gzip(1)),
            Some(&cache),
        );
        let mut out = Vec::new();
        let again = gzip.layers[0].write_to(&mut out, &Cancel::new()).unwrap();
        assert_eq!(
            again.compression,
            Compression::Gzip,
            "no zstd blob for gzip"
        );
        assert_eq!(again.diff_id, written.diff_id);
        let resolved = gzip.finish(vec![again]);
        let manifest: Manifest = serde_json::from_slice(&resolved.manifest).unwrap();
        assert_eq!(
            manifest.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }

    #[test]
    fn a_trusted_blob_is_copied_without_being_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().join("cache"));
        let image = cached_image(&cache);
        let LayerSource::Blob { range, .. } = image.layers()[0].source() else {
            unreachable!()
        };
        // Bytes changed behind the cache's back, same size: trusted by name, copied as they are.
        let mut bytes = std::fs::read(&range.path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&range.path, &bytes).unwrap();
        let trusted = resolve(&image, Encoding::Uncompressed, Some(&cache));
        let mut out = Vec::new();
        trusted.layers[0]
            .write_to(&mut out, &Cancel::new())
            .unwrap();
        assert_eq!(out, bytes);
        // Without the cache vouching for it, the same blob is hashed and refused.
        let checked = resolve(&image, Encoding::Uncompressed, None);
        let err = checked.layers[0]
            .write_to(&mut Vec::new(), &Cancel::new())
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }
}
