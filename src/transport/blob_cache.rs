//! A content-addressed store of pulled, pushed and compressed blobs, so a second build transfers
//! and compresses nothing.
//!
//! `blobs/sha256/<hex>` and `manifests/sha256/<hex>` under one directory, and
//! `diff-ids/sha256/<hex>`: which stored blob is the compressed form of a layer, so a layer
//! pushed before is not compressed again. A blob enters the store
//! only after its bytes were hashed and matched its digest (temporary file, then rename), so
//! every file in it can be trusted by name.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::{Digest, Error, Result, WrittenLayer};

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
            let mut temp = self.temp_in(&dir)?;
            temp.write_all(bytes).map_err(Error::io("writing", &path))?;
            persist(temp, &path)?;
        }
        Ok(digest)
    }

    /// The compressed blob stored earlier for the layer with `diff_id`, if it is still there.
    pub fn compressed(&self, diff_id: &Digest) -> Option<WrittenLayer> {
        let bytes = std::fs::read(self.bucket("diff-ids").join(diff_id.hex())).ok()?;
        let written: WrittenLayer = serde_json::from_slice(&bytes).ok()?;
        let size = std::fs::metadata(self.blob_path(&written.digest))
            .ok()?
            .len();
        touch(&self.blob_path(&written.digest));
        (written.diff_id == *diff_id && size == written.size).then_some(written)
    }

    /// Records that `written` is the compressed form of its diff_id (its blob is in the store).
    pub fn remember_compressed(&self, written: &WrittenLayer) -> Result<()> {
        let dir = self.bucket("diff-ids");
        let path = dir.join(written.diff_id.hex());
        let bytes =
            serde_json::to_vec(written).map_err(|e| Error::io("writing", &path)(e.into()))?;
        let mut temp = self.temp_in(&dir)?;
        temp.write_all(&bytes)
            .map_err(Error::io("writing", &path))?;
        persist(temp, &path)
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
        touch(&self.bucket("layer-keys").join(key.hex()));
        touch(&blob);
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
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("writing in", dir))
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

/// A layer's compressed blob from an earlier write, found by the diff_id of its tar. `None` for
/// a layer stored compressed already (it is written as it is), or one not compressed before.
pub fn cached_compressed(
    layer: &crate::image::Layer,
    cache: &BlobCache,
    cancel: &crate::image::Cancel,
) -> Result<Option<WrittenLayer>> {
    if !needs_compression(layer) {
        return Ok(None);
    }
    // Compressing costs far more than making the tar: hash the tar when its diff_id is unknown.
    let diff_id = match layer.diff_id() {
        Some(d) => d.clone(),
        None => {
            layer
                .write_to(
                    &mut std::io::sink(),
                    crate::image::Encoding::Uncompressed,
                    cancel,
                )?
                .diff_id
        }
    };
    Ok(cache.compressed(&diff_id))
}

/// The stored compressed blob of `layer`: the one from an earlier write when there is one
/// (`reused`), else compressed now and kept for the next write. For a layer that
/// [`needs_compression`].
pub fn compressed_blob(
    layer: &crate::image::Layer,
    cache: &BlobCache,
    cancel: &crate::image::Cancel,
) -> Result<StoredBlob> {
    if let Some(written) = cached_compressed(layer, cache, cancel)? {
        return Ok(StoredBlob {
            path: cache.blob_path(&written.digest),
            written,
            reused: true,
        });
    }
    let temp = cache.temp_blob()?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
    let written = layer.write_to(&mut out, crate::image::Encoding::KeepOrGzip, cancel)?;
    out.flush().map_err(Error::io("writing", temp.path()))?;
    drop(out);
    let path = cache.commit(temp, &written.digest)?;
    cache.remember_compressed(&written)?;
    Ok(StoredBlob {
        path,
        written,
        reused: false,
    })
}

/// A compressed layer blob in the store (see [`compressed_blob`]).
pub struct StoredBlob {
    /// Where its bytes are.
    pub path: PathBuf,
    /// Its digest, size, diff_id and compression.
    pub written: WrittenLayer,
    /// True when an earlier write had compressed it already.
    pub reused: bool,
}

/// True when writing `layer` for a registry or an OCI layout means compressing it.
pub fn needs_compression(layer: &crate::image::Layer) -> bool {
    use crate::image::layer::LayerSource;
    match layer.source() {
        LayerSource::Tar(_) => true,
        LayerSource::Blob { compression, .. } => *compression == crate::image::Compression::None,
    }
}

/// Copies the file at `source` to `dest` through a temporary file in `dest`'s directory.
pub(crate) fn copy_file(source: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io("writing in", dir))?;
    let mut src = std::fs::File::open(source).map_err(Error::io("reading", source))?;
    std::io::copy(&mut src, &mut temp).map_err(Error::io("writing", dest))?;
    persist(temp, dest)
}

use super::persist;

/// Sets a cache file's mtime to now (its last use); a failure only makes it look older.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}
