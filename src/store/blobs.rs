//! A content-addressed store of pulled, pushed and compressed blobs, so a second build transfers
//! and compresses nothing.
//!
//! `blobs/sha256/<hex>` and `manifests/sha256/<hex>` under one directory, and
//! `diff-ids/sha256/<hex>-<compression>` (`-gzip-1`, `-zstdmt-3`, `-none`): which stored blob is
//! the layer with that diff_id in that compression at that level, so a layer written before is
//! not compressed again and a gzip blob is never served for a zstd write. A blob enters the
//! store only after its bytes were hashed and matched its digest (temporary file, then rename),
//! so every file in it is named by its checked digest ([`BlobStore::holds`]). Its bytes are
//! hashed again when read; a damaged blob is dropped ([`BlobCache::drop_damaged`]) and made
//! or fetched again. Entries are read beneath the store without following symlinks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image::layer::FileRange;
use crate::image::resolve::{BlobStore, PlacedBlob, needs_compression};
use crate::image::{
    Cancel, Digest, Encoding, Error, Layer, LayerCompression, Result, WrittenLayer,
};
use crate::reporter::Reporter;

/// The most a layer key's or a diff_id's entry (a few hundred bytes of JSON) is read of.
const ENTRY_CAP: u64 = 64 * 1024;
/// The largest cache record kept.
const RECORD_CAP: u64 = 128 << 20;

/// The blob store ([`super::Store::blobs`]).
#[derive(Clone)]
pub struct BlobCache {
    dir: PathBuf,
    verify: bool,
    reporter: Option<Arc<dyn Reporter>>,
    compress_layers: Vec<LayerCompression>,
}

impl std::fmt::Debug for BlobCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobCache")
            .field("dir", &self.dir)
            .field("verify", &self.verify)
            .field("compress_layers", &self.compress_layers)
            .finish_non_exhaustive()
    }
}

/// What a stored blob was found to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobState {
    /// Not in the store (never stored, or pruned).
    Missing,
    /// A regular file of the expected size (and, when hashed, the expected bytes).
    Sound,
    /// Anything else, and why.
    Damaged(String),
}

impl BlobCache {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            verify: false,
            reporter: None,
            compress_layers: Vec::new(),
        }
    }

    /// This store, hashing every blob a lookup finds (a layer key's tar, a compressed
    /// layer, a pulled blob) instead of checking its size: what a build does after a
    /// damaged blob was found.
    pub fn verifying(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// This store, naming the compressions the outputs of a build want, so each layer the
    /// build composes is compressed to them as it is stored
    /// ([`Self::put_layer_compressed`] with [`Self::layer_compressions`]). By default, none.
    pub fn compressing(mut self, compressions: Vec<LayerCompression>) -> Self {
        self.compress_layers = compressions;
        self
    }

    /// The compressions [`Self::compressing`] named.
    pub fn layer_compressions(&self) -> &[LayerCompression] {
        &self.compress_layers
    }

    /// This store, telling `reporter` of each damaged blob it drops.
    pub fn reporting(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// What the stored blob `digest` is: a regular file beneath the store (no symlink
    /// followed on the way) of `size` bytes when given, and, with `hash`, holding bytes that
    /// hash to `digest`.
    pub fn inspect(&self, digest: &Digest, size: Option<u64>, hash: bool) -> BlobState {
        let rel = format!("blobs/sha256/{}", digest.hex());
        let Ok(root) = crate::beneath::Dir::open(&self.dir) else {
            return BlobState::Missing;
        };
        let stat = match root.stat(&rel) {
            Ok(stat) => stat,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BlobState::Missing,
            Err(e) => return BlobState::Damaged(format!("cannot read it: {e}")),
        };
        if stat.kind != crate::beneath::Kind::File {
            return BlobState::Damaged("it is not a regular file".into());
        }
        match size {
            Some(size) if stat.size != size => {
                return BlobState::Damaged(format!("it has {} bytes, not {size}", stat.size));
            }
            _ if !hash => return BlobState::Sound,
            _ => {}
        }
        match hash_file(&root, &rel) {
            Ok(actual) if actual == *digest => BlobState::Sound,
            Ok(_) => BlobState::Damaged("its bytes do not match its digest".into()),
            Err(e) => BlobState::Damaged(format!("cannot read it: {e}")),
        }
    }

    /// True when the stored blob `digest` is there and sound ([`BlobCache::inspect`], hashed
    /// when this store verifies); a damaged one is dropped ([`BlobCache::drop_damaged`]).
    pub fn usable(&self, digest: &Digest, size: Option<u64>) -> bool {
        match self.inspect(digest, size, self.verify) {
            BlobState::Sound => true,
            BlobState::Missing => false,
            BlobState::Damaged(reason) => {
                self.drop_damaged(digest, &reason);
                false
            }
        }
    }

    /// Removes the damaged blob `digest` from the store (a symlink is removed, never what it
    /// points to) and tells the reporter once, so the build makes or fetches it again.
    pub fn drop_damaged(&self, digest: &Digest, reason: &str) {
        let path = self.blob_path(digest);
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => "removed it",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it is gone",
            Err(_) => "it could not be removed",
        };
        if let Some(reporter) = &self.reporter {
            reporter.warning(&format!(
                "the cached blob {digest} in `{}` was damaged ({reason}): {removed}, and it is \
                 made or fetched again",
                self.dir.display()
            ));
        }
    }

    /// The small entry `kind/sha256/name` (a layer key, a diff_id's compressed layer), read
    /// beneath the store without following a symlink.
    fn entry(&self, kind: &str, name: &str) -> Option<Vec<u8>> {
        crate::beneath::Dir::open(&self.dir)
            .ok()?
            .read_small(&format!("{kind}/sha256/{name}"), ENTRY_CAP)
            .ok()
    }

    fn bucket(&self, kind: &str) -> PathBuf {
        self.dir.join(kind).join("sha256")
    }

    /// Removes temporaries that killed runs left in the store (see [`crate::atomic`]).
    pub fn remove_stale(&self) -> usize {
        ["blobs", "manifests", "diff-ids", "layer-keys", "records"]
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
            .join(compressed_name(diff_id, compression))
    }

    /// The blob stored earlier for the layer with `diff_id` in `compression` (at its level), if
    /// it is still there.
    pub fn compressed(
        &self,
        diff_id: &Digest,
        compression: LayerCompression,
    ) -> Option<WrittenLayer> {
        let bytes = self.entry("diff-ids", &compressed_name(diff_id, compression))?;
        let written: WrittenLayer = serde_json::from_slice(&bytes).ok()?;
        if written.diff_id != *diff_id || written.compression != compression.compression() {
            return None;
        }
        crate::atomic::touch(&self.blob_path(&written.digest));
        self.usable(&written.digest, Some(written.size))
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

    /// The cache record kept under `key` (the digest of what it compresses), if any: the
    /// caller checks it against the key, since this store knows no record format.
    pub fn record(&self, key: &Digest) -> Option<Vec<u8>> {
        let rel = format!("records/sha256/{}", key.hex());
        crate::beneath::Dir::open(&self.dir)
            .ok()?
            .read_small(&rel, RECORD_CAP)
            .ok()
    }

    /// Keeps the cache record `bytes` under `key`, so a warm build does not compress it again.
    pub fn put_record(&self, key: &Digest, bytes: &[u8]) -> std::io::Result<()> {
        crate::atomic::write(&self.bucket("records").join(key.hex()), bytes)
    }

    /// The layer made before from the inputs `key` names, if its tar is still stored.
    pub fn keyed_layer(&self, key: &Digest) -> Option<KeyedLayer> {
        let bytes = self.entry("layer-keys", key.hex())?;
        let layer: KeyedLayer = serde_json::from_slice(&bytes).ok()?;
        // Mark both as used, for `cache prune --older-than`.
        crate::atomic::touch(&self.bucket("layer-keys").join(key.hex()));
        crate::atomic::touch(&self.blob_path(&layer.diff_id));
        self.usable(&layer.diff_id, Some(layer.size))
            .then_some(layer)
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

    /// [`Self::put_layer`], also writing the layer's blob in each of `compressions` into the
    /// store in the same pass (the tar is made once, and compressed as it is made), each
    /// remembered by diff_id as [`Self::compressed`] finds it: a later write in one of them
    /// places that blob and compresses nothing. [`LayerCompression::none`] is skipped (the tar
    /// is the plain blob); with none left this is [`Self::put_layer`].
    pub fn put_layer_compressed(
        &self,
        key: Option<&Digest>,
        compressions: &[LayerCompression],
        cancel: &Cancel,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<KeyedLayer> {
        let mut wanted: Vec<LayerCompression> = Vec::new();
        for c in compressions {
            if c.compression() != crate::image::Compression::None && !wanted.contains(c) {
                wanted.push(*c);
            }
        }
        if wanted.is_empty() {
            return self.put_layer(key, write);
        }
        let temps = wanted
            .iter()
            .map(|_| self.temp_blob())
            .collect::<Result<Vec<_>>>()?;
        let mut blobs = Vec::with_capacity(wanted.len());
        for (c, temp) in wanted.iter().zip(&temps) {
            let out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
            blobs.push(
                c.writer(out, Some(cancel))
                    .map_err(Error::io("compressing layer", temp.path()))?,
            );
        }
        let mut written = Vec::with_capacity(wanted.len());
        let layer = self.put_layer(key, |tar| {
            let mut tee = Tee {
                tar,
                blobs: &mut blobs,
            };
            write(&mut tee)?;
            for blob in blobs.drain(..) {
                let (layer, mut out) = blob.finish()?;
                out.flush()?;
                written.push(layer);
            }
            Ok(())
        })?;
        drop(blobs);
        for ((temp, layer), c) in temps.into_iter().zip(&written).zip(&wanted) {
            self.commit(temp, &layer.digest)?;
            self.remember_compressed(layer, *c)?;
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
    /// A blob already there is kept when it is a regular file of the same size (its bytes were
    /// checked when it was stored), else replaced.
    pub fn commit(&self, temp: tempfile::NamedTempFile, digest: &Digest) -> Result<PathBuf> {
        let path = self.blob_path(digest);
        let size = temp
            .as_file()
            .metadata()
            .map_err(Error::io("writing", temp.path()))?
            .len();
        if self.inspect(digest, Some(size), false) != BlobState::Sound {
            persist(temp, &path)?;
        }
        Ok(path)
    }
}

/// Writes every byte to the layer's tar and to each of its compressed blobs.
struct Tee<'a, 'b, W: Write> {
    tar: &'a mut dyn Write,
    blobs: &'b mut [crate::image::compress::LayerWriter<W>],
}

impl<W: Write> Write for Tee<'_, '_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tar.write_all(buf)?;
        for blob in self.blobs.iter_mut() {
            blob.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
    /// Bytes the store checked against `digest` before naming them by it, placed without
    /// being compressed or read as a tar again.
    /// Whether the bytes are still sound is checked as they are read ([`PlacedBlob::copy_to`]).
    fn holds(&self, range: &FileRange, digest: &Digest) -> bool {
        range.offset == 0 && range.path == self.blob_path(digest)
    }

    fn damage(&self, range: &FileRange, digest: &Digest) -> Option<String> {
        if !self.holds(range, digest) {
            return None;
        }
        match self.inspect(digest, Some(range.size), true) {
            BlobState::Sound => None,
            BlobState::Missing => Some("it is missing".into()),
            BlobState::Damaged(reason) => Some(reason),
        }
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

/// The sha256 of the regular file `rel` beneath `root` (no symlink followed).
pub(crate) fn hash_file(root: &crate::beneath::Dir, rel: &str) -> std::io::Result<Digest> {
    let mut reader = crate::image::digest::HashingReader::new(root.open_file(rel)?);
    std::io::copy(&mut reader, &mut std::io::sink())?;
    Ok(reader.finish().0)
}

/// The name of the entry that says which blob is `diff_id`'s layer in `compression`. A zstd
/// entry is `-zstdmt-<level>`: zstd layers are compressed on several threads now (other
/// bytes than a single-threaded `-zstd-<level>` blob), and a blob an older version cached is
/// not taken for one, so a warm build gives the bytes of a cold one.
fn compressed_name(diff_id: &Digest, compression: LayerCompression) -> String {
    match compression.compression() {
        crate::image::Compression::Zstd => {
            format!("{}-zstdmt-{}", diff_id.hex(), compression.level())
        }
        _ => format!("{}-{}", diff_id.hex(), compression.key()),
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
    fn a_trusted_blob_is_hashed_as_it_is_copied_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path().join("cache"));
        let image = cached_image(&cache);
        let LayerSource::Blob { range, .. } = image.layers()[0].source() else {
            unreachable!()
        };
        let sound = resolve(&image, Encoding::Uncompressed, Some(&cache));
        let mut out = Vec::new();
        sound.layers[0].write_to(&mut out, &Cancel::new()).unwrap();
        assert_eq!(out, std::fs::read(&range.path).unwrap());
        // Bytes changed behind the cache's back, same size: found as they are copied.
        let mut bytes = std::fs::read(&range.path).unwrap();
        bytes[600] ^= 1;
        std::fs::write(&range.path, &bytes).unwrap();
        let damaged = |image: &crate::image::Image| {
            let trusted = resolve(image, Encoding::Uncompressed, Some(&cache));
            let err = trusted.layers[0]
                .write_to(&mut Vec::new(), &Cancel::new())
                .unwrap_err();
            match err {
                Error::StoredBlobDamaged { reason, .. } => reason,
                e => panic!("{e}"),
            }
        };
        assert!(damaged(&image).contains("do not match"));
        // A symlink to a file elsewhere is never followed, and a short file is named as such.
        let host = dir.path().join("host");
        std::fs::write(&host, b"host bytes").unwrap();
        std::fs::remove_file(&range.path).unwrap();
        std::os::unix::fs::symlink(&host, &range.path).unwrap();
        assert!(damaged(&image).contains("not a regular file"));
        std::fs::remove_file(&range.path).unwrap();
        std::fs::write(&range.path, &bytes[..100]).unwrap();
        assert!(damaged(&image).contains("100 bytes"));
        // Without the cache vouching for it, the same blob is refused as any bad input is.
        let checked = resolve(&image, Encoding::Uncompressed, None);
        let err = checked.layers[0]
            .write_to(&mut Vec::new(), &Cancel::new())
            .unwrap_err();
        assert!(!matches!(err, Error::StoredBlobDamaged { .. }), "{err}");
    }

    #[test]
    fn a_damaged_blob_is_dropped_on_lookup_and_replaced_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let key = Digest::of(b"key");
        let write = |w: &mut dyn Write| w.write_all(&[7u8; 3000]);
        let stored = cache.put_layer(Some(&key), write).unwrap();
        assert_eq!(cache.keyed_layer(&key), Some(stored.clone()));
        let path = cache.blob_path(&stored.diff_id);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        // Same size: a plain lookup trusts it; a verifying one hashes it and drops it.
        assert!(cache.keyed_layer(&key).is_some());
        let verifying = cache.clone().verifying(true);
        assert_eq!(verifying.keyed_layer(&key), None);
        assert!(!path.exists(), "dropped");
        // A truncated blob is a miss even without hashing, and a new one replaces it.
        cache.put_layer(Some(&key), write).unwrap();
        std::fs::write(&path, &bytes[..17]).unwrap();
        assert_eq!(cache.keyed_layer(&key), None);
        std::fs::write(&path, &bytes[..17]).unwrap();
        cache.put_layer(Some(&key), write).unwrap();
        assert_eq!(verifying.keyed_layer(&key), Some(stored));
    }

    /// A layer stored with its compressions is found by a later write in one of them, which
    /// then compresses nothing, and gets the bytes a second pass would have made.
    #[test]
    fn a_layer_stored_compressed_is_placed_without_compressing_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let tar = crate::image::gzip::tests::sample(700_000);
        let wanted = [
            LayerCompression::gzip(3),
            LayerCompression::none(),
            LayerCompression::zstd(3),
        ];
        let write = |w: &mut dyn Write| w.write_all(&tar);
        let stored = cache
            .put_layer_compressed(None, &wanted, &Cancel::new(), write)
            .unwrap();
        assert_eq!(stored.diff_id, Digest::of(&tar));
        for c in [wanted[0], wanted[2]] {
            let found = cache
                .compressed(&stored.diff_id, c)
                .expect("stored compressed");
            let mut again = Vec::new();
            let second = c.encode(&mut again, |w| w.write_all(&tar)).unwrap();
            assert_eq!(found, second, "{c}");
            assert_eq!(
                std::fs::read(cache.blob_path(&found.digest)).unwrap(),
                again
            );
        }
        assert!(
            cache
                .compressed(&stored.diff_id, LayerCompression::gzip(1))
                .is_none()
        );
        // Placed from the store as an output would be: reused, not compressed again.
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
            Some(stored.diff_id.clone()),
            "made",
        );
        let encoding = Encoding::Compressed(wanted[0]);
        let placed = cache
            .compressed_blob(&layer, encoding, &Cancel::new())
            .unwrap();
        assert!(placed.reused, "compressed a second time");
    }

    #[test]
    fn a_cancelled_compressed_put_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let cancel = Cancel::new();
        let err = cache
            .put_layer_compressed(None, &[LayerCompression::gzip(1)], &cancel, |w| {
                w.write_all(&[1u8; 600_000])?;
                cancel.cancel();
                w.write_all(&[2u8; 600_000])
            })
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        let left = std::fs::read_dir(cache.bucket("blobs")).unwrap().count();
        assert_eq!(left, 0, "a temporary or a blob was left");
    }
}
