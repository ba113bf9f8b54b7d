//! A content-addressed store of pulled, pushed and compressed blobs, so a second build transfers
//! and compresses nothing.
//!
//! `blobs/sha256/<hex>` and `manifests/sha256/<hex>` under one directory, and
//! `diff-ids/sha256/<hex>-<compression>` (`-gzip-1`, `-zstd-3`, `-none`): which stored blob is
//! the layer with that diff_id in that compression at that level, so a layer written before is
//! not compressed again and a gzip blob is never served for a zstd write. A blob enters the
//! store only after its bytes were hashed and matched its digest (temporary file, then rename),
//! so every file in it can be trusted by name ([`BlobCache::holds`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::layer::FileRange;
use crate::image::{Digest, Encoding, Error, LayerCompression, Result, WrittenLayer};

/// The blob store.
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store under a user-given cache directory (`DIR/oci-v1`), else [`Self::default_dir`].
    pub fn for_cache_dir(cache_dir: Option<&Path>) -> Self {
        match cache_dir {
            Some(d) => Self::new(d.join("oci-v1")),
            None => Self::new(Self::default_dir()),
        }
    }

    /// The default store: `$XDG_CACHE_HOME/conda-docker/oci-v1` (or `~/.cache/...`).
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("conda-docker").join("oci-v1")
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

    /// True when `range` is the whole of this store's blob named `digest`: bytes the store
    /// checked against that digest before naming them by it, to be trusted without hashing
    /// them again.
    pub fn holds(&self, range: &FileRange, digest: &Digest) -> bool {
        range.offset == 0
            && range.path == self.blob_path(digest)
            && std::fs::metadata(&range.path).is_ok_and(|m| m.len() == range.size)
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

/// A layer's blob from an earlier write in `encoding`'s compression, found by the diff_id of
/// its tar. `None` for a layer stored in that compression already (it is written as it is), or
/// one not written so before.
pub fn cached_compressed(
    layer: &crate::image::Layer,
    cache: &BlobCache,
    encoding: Encoding,
    cancel: &crate::image::Cancel,
) -> Result<Option<WrittenLayer>> {
    if !needs_compression(layer, encoding) {
        return Ok(None);
    }
    // Compressing costs far more than making the tar: hash the tar when its diff_id is unknown.
    let diff_id = match layer.diff_id() {
        Some(d) => d.clone(),
        None => {
            layer
                .write_to(&mut std::io::sink(), Encoding::Uncompressed, cancel)?
                .diff_id
        }
    };
    Ok(cache.compressed(&diff_id, encoding.target()))
}

/// The stored blob of `layer` in `encoding`'s compression: the one from an earlier write when
/// there is one (`reused`), else written now (checked as it streams) and kept for the next
/// write.
pub fn compressed_blob(
    layer: &crate::image::Layer,
    cache: &BlobCache,
    encoding: Encoding,
    cancel: &crate::image::Cancel,
) -> Result<StoredBlob> {
    if let Some(written) = cached_compressed(layer, cache, encoding, cancel)? {
        return Ok(StoredBlob {
            path: cache.blob_path(&written.digest),
            written,
            reused: true,
        });
    }
    let temp = cache.temp_blob()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
    let written = layer.write_to(&mut out, encoding, cancel)?;
    out.flush().map_err(Error::io("writing", temp.path()))?;
    drop(out);
    let path = cache.commit(temp, &written.digest)?;
    if needs_compression(layer, encoding) {
        cache.remember_compressed(&written, encoding.target())?;
    }
    Ok(StoredBlob {
        path,
        written,
        reused: false,
    })
}

/// A layer blob in the store (see [`compressed_blob`]).
pub struct StoredBlob {
    /// Where its bytes are.
    pub path: PathBuf,
    /// Its digest, size, diff_id and compression.
    pub written: WrittenLayer,
    /// True when an earlier write had compressed it already.
    pub reused: bool,
}

/// True when writing `layer` as `encoding` asks means (re)compressing it: a made tar, or a
/// stored blob in another compression.
pub fn needs_compression(layer: &crate::image::Layer, encoding: Encoding) -> bool {
    use crate::image::layer::LayerSource;
    match layer.source() {
        LayerSource::Tar(_) => true,
        LayerSource::Blob { compression, .. } => !encoding.keeps(*compression),
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
