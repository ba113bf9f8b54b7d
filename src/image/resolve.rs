//! Resolving an image for writing: the one place that decides which blob each layer becomes,
//! and makes the config and manifest of what was written. Transports only place blobs.
//!
//! [`resolve`] looks at each layer once, for the [`Encoding`] a transport wants:
//!
//! - a blob of the blob cache already in the wanted compression is used as it is: the cache
//!   named it by its checked digest, so it is not read as a tar again, only hashed as it is
//!   copied (a warm docker-archive write costs about a `cat` of its blobs and their sha256; a
//!   damaged one is [`Error::StoredBlobDamaged`], see [`PlacedBlob::copy_to`]);
//! - a layer to (re)compress, when a cache is given, is compressed into the cache once (or found
//!   there by diff_id, compression and level) and placed from there (a docker-archive's
//!   decompressed layers are streamed instead: the cache keeps no plain copy of them);
//! - anything else is streamed through [`Layer::write_to`], which hashes and checks it on the way.
//!
//! [`Resolution::finish`] then gives the config (with the diff_ids written) and the OCI
//! manifest; [`index`] builds every OCI index (`index.json`, multi-platform indexes).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::digest::HashingReader;
use super::layer::{FileRange, LayerSource};
use super::manifest::{Descriptor, DescriptorPlatform, Index, Manifest, REF_NAME};
use super::{
    Cancel, Compression, Digest, Encoding, Error, Image, Layer, Platform, Result, WrittenLayer,
    media_type,
};

/// A store of blobs the writers may trust and compress layers into. The image side knows the
/// blob cache only through this trait (`crate::store::BlobCache` implements it), so nothing
/// here depends on the store or the transports.
pub trait BlobStore: Send + Sync {
    /// True when `range` is the whole of this store's blob named `digest`: bytes the store
    /// checked against that digest before naming them by it.
    fn holds(&self, range: &FileRange, digest: &Digest) -> bool;

    /// Why this store's blob `digest` (at `range`) is damaged, hashed now; `None` when it is
    /// sound or not this store's. Asked only after reading a stored blob failed, to tell a
    /// damaged cache from a bad image.
    fn damage(&self, range: &FileRange, digest: &Digest) -> Option<String>;

    /// The stored blob of `layer` in `encoding`'s compression (`reused` when an earlier write
    /// had made it), else written into the store now, checked as it streams.
    fn compressed_blob(
        &self,
        layer: &Layer,
        encoding: Encoding,
        cancel: &Cancel,
    ) -> Result<PlacedBlob>;
}

/// True when writing `layer` as `encoding` asks means (re)compressing it: a made tar, or a
/// stored blob in another compression.
pub fn needs_compression(layer: &Layer, encoding: Encoding) -> bool {
    match layer.source() {
        LayerSource::Tar(_) => true,
        LayerSource::Blob { compression, .. } => !encoding.keeps(*compression),
        LayerSource::Remote(_) => false,
    }
}

/// The annotation containerd and Docker use for an image's full name.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An image being written: each layer's blob, then (with [`Resolution::finish`]) its config and
/// manifest.
pub struct Resolution<'a> {
    image: &'a Image,
    /// The layers' blobs, bottom first.
    pub layers: Vec<LayerBlob<'a>>,
}

/// What one layer becomes.
pub struct LayerBlob<'a> {
    layer: &'a Layer,
    encoding: Encoding,
    cache: Option<&'a dyn BlobStore>,
    how: How,
}

enum How {
    /// These bytes, as they are: a trusted blob of the cache.
    Stored {
        range: FileRange,
        written: WrittenLayer,
    },
    /// Compressed into the cache (or found there), then placed from it.
    Cached,
    /// Streamed through the layer's checked writer.
    Streamed,
    /// Held by a registry, not here: only a registry that has it (or can mount it) takes it.
    Remote(WrittenLayer),
}

/// Decides, for each layer of `image`, which blob it becomes when written as `encoding` asks;
/// `cache` is where compressed blobs are kept (and trusted blobs found).
pub fn resolve<'a>(
    image: &'a Image,
    encoding: Encoding,
    cache: Option<&'a dyn BlobStore>,
) -> Resolution<'a> {
    let layers = image
        .layers()
        .iter()
        .map(|layer| {
            // Decompressing for a docker-archive is streamed: the cache keeps no plain copy.
            let compress = encoding != Encoding::Uncompressed && needs_compression(layer, encoding);
            let how = match (layer.source(), trusted(layer, encoding, cache), cache) {
                (LayerSource::Remote(written), ..) => How::Remote(written.clone()),
                (_, Some((range, written)), _) => How::Stored { range, written },
                (_, None, Some(_)) if compress => How::Cached,
                _ => How::Streamed,
            };
            LayerBlob {
                layer,
                encoding,
                cache,
                how,
            }
        })
        .collect();
    Resolution { image, layers }
}

/// The layer's stored blob, when it is the cache's own, in the wanted compression, and what it
/// is; its digest is the cache's name for it (and, for a plain tar, its diff_id).
fn trusted(
    layer: &Layer,
    encoding: Encoding,
    cache: Option<&dyn BlobStore>,
) -> Option<(FileRange, WrittenLayer)> {
    let LayerSource::Blob {
        range,
        compression,
        digest: Some(digest),
    } = layer.source()
    else {
        return None;
    };
    if !encoding.keeps(*compression) || !cache?.holds(range, digest) {
        return None;
    }
    let diff_id = match (compression, layer.diff_id()) {
        // A diff_id other than the tar's digest is an error the checked writer reports.
        (Compression::None, Some(d)) if d != digest => return None,
        (Compression::None, _) => digest.clone(),
        (_, d) => d?.clone(),
    };
    Some((
        range.clone(),
        WrittenLayer {
            diff_id,
            digest: digest.clone(),
            size: range.size,
            compression: *compression,
        },
    ))
}

impl<'a> LayerBlob<'a> {
    /// The layer.
    pub fn layer(&self) -> &'a Layer {
        self.layer
    }

    /// The blob's digests, size and compression when known before it is placed (a stored blob).
    pub fn known(&self) -> Option<&WrittenLayer> {
        match &self.how {
            How::Stored { written, .. } | How::Remote(written) => Some(written),
            _ => None,
        }
    }

    /// True when only a registry holds the blob (see [`LayerSource::Remote`]).
    pub fn is_remote(&self) -> bool {
        matches!(self.how, How::Remote(_))
    }

    /// The blob as bytes on disk, to link, copy or upload: stored, or written into the cache
    /// (compressed, or, without `streamed`, copied there and checked). `None` when there is no
    /// cache, or when `streamed` and the layer is best streamed where it goes.
    pub fn file(&self, streamed: bool, cancel: &Cancel) -> Result<Option<PlacedBlob>> {
        self.check_stored()?;
        match (&self.how, self.cache) {
            (How::Stored { range, written }, _) => Ok(Some(PlacedBlob {
                range: range.clone(),
                written: written.clone(),
                reused: false,
            })),
            (How::Remote(_), _) => self
                .layer
                .write_to(&mut io::sink(), self.encoding, cancel)
                .map(|_| None),
            (How::Streamed, _) if streamed => Ok(None),
            (How::Cached | How::Streamed, Some(cache)) => cache
                .compressed_blob(self.layer, self.encoding, cancel)
                .map(Some)
                .map_err(|e| self.or_damage(e)),
            (_, None) => Ok(None),
        }
    }

    /// Writes the blob's bytes to `out`: copied as they are when stored (or once compressed into
    /// the cache), else streamed and checked. Returns what was written.
    pub fn write_to<W: Write>(&self, out: &mut W, cancel: &Cancel) -> Result<WrittenLayer> {
        match self.file(true, cancel)? {
            Some(blob) => {
                blob.copy_to(out, cancel)?;
                Ok(blob.written)
            }
            None => self
                .layer
                .write_to(out, self.encoding, cancel)
                .map_err(|e| self.or_damage(e)),
        }
    }

    /// The layer's source when it is a blob of the store, and its digest.
    fn stored(&self) -> Option<(&'a FileRange, &'a Digest, &'a dyn BlobStore)> {
        match (self.layer.source(), self.cache) {
            (
                LayerSource::Blob {
                    range,
                    digest: Some(digest),
                    ..
                },
                Some(cache),
            ) if cache.holds(range, digest) => Some((range, digest, cache)),
            _ => None,
        }
    }

    /// Before a stored blob is read or placed: it must be a regular file (not followed if it
    /// is a symlink) of its recorded size, else it is [`Error::StoredBlobDamaged`].
    fn check_stored(&self) -> Result<()> {
        let Some((range, digest, _)) = self.stored() else {
            return Ok(());
        };
        let reason = match std::fs::symlink_metadata(&range.path) {
            Ok(m) if !m.is_file() => "it is not a regular file".to_string(),
            Ok(m) if m.len() != range.size => {
                format!("it has {} bytes, not {}", m.len(), range.size)
            }
            Ok(_) => return Ok(()),
            Err(e) => format!("cannot read it: {e}"),
        };
        Err(Error::StoredBlobDamaged {
            path: range.path.clone(),
            digest: digest.clone(),
            reason,
        })
    }

    /// `e`, or, when it came from reading a stored blob that hashes wrong now, that damage.
    fn or_damage(&self, e: Error) -> Error {
        if matches!(e, Error::Cancelled | Error::StoredBlobDamaged { .. }) {
            return e;
        }
        match self.stored() {
            Some((range, digest, cache)) => match cache.damage(range, digest) {
                Some(reason) => Error::StoredBlobDamaged {
                    path: range.path.clone(),
                    digest: digest.clone(),
                    reason,
                },
                None => e,
            },
            None => e,
        }
    }
}

/// A blob on disk, ready to be placed.
pub struct PlacedBlob {
    /// Where its bytes are.
    pub range: FileRange,
    /// What they are.
    pub written: WrittenLayer,
    /// True when it had to be compressed and an earlier write had done it.
    pub reused: bool,
}

impl PlacedBlob {
    /// Copies the bytes to `out`, hashing them on the way. A blob that is not a regular file
    /// (no symlink is followed, a FIFO is not waited on), cannot be read, or whose size or bytes
    /// differ from what names it is [`Error::StoredBlobDamaged`]; `out` then holds part of a
    /// copy, to be thrown away.
    pub fn copy_to<W: Write>(&self, out: &mut W, cancel: &Cancel) -> Result<()> {
        let path = &self.range.path;
        let damaged = |reason: String| Error::StoredBlobDamaged {
            path: path.clone(),
            digest: self.written.digest.clone(),
            reason,
        };
        cancel.check().map_err(Error::io("reading", path))?;
        let mut file = open_stored(path).map_err(|e| damaged(format!("cannot open it: {e}")))?;
        file.seek(SeekFrom::Start(self.range.offset))
            .map_err(|e| damaged(format!("cannot read it: {e}")))?;
        // The copy stays the kernel's (`copy_file_range` between files), and the hash is read
        // beside it on another thread, so verifying costs about nothing on two cores.
        let (offset, size) = (self.range.offset, self.range.size);
        let (copied, hashed) = std::thread::scope(|s| {
            let hashing = s.spawn(|| -> io::Result<(crate::image::Digest, u64)> {
                let mut again = open_stored(path)?;
                again.seek(SeekFrom::Start(offset))?;
                let mut reader = HashingReader::new(again.take(size));
                io::copy(&mut reader, &mut io::sink())?;
                Ok(reader.finish())
            });
            let copied = io::copy(&mut file.take(size), out);
            (copied, hashing.join())
        });
        copied.map_err(Error::io("copying blob from", path))?;
        let (actual, read) = hashed
            .map_err(|_| damaged("hashing it failed".into()))?
            .map_err(|e| damaged(format!("cannot read it: {e}")))?;
        if read != self.range.size {
            return Err(damaged(format!(
                "it is truncated: {read} of {} bytes",
                self.range.size
            )));
        }
        if actual != self.written.digest {
            return Err(damaged("its bytes do not match its digest".into()));
        }
        Ok(())
    }
}

/// Opens a stored blob for reading: its last component is not followed if it is a symlink, and
/// anything but a regular file is refused without blocking on it.
pub fn open_stored(path: &std::path::Path) -> io::Result<File> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    crate::beneath::Dir::open(dir)?.open_file(name)
}

/// An image as written: its config and manifest, and its layers' blobs.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The config blob, with the diff_ids written.
    pub config: Vec<u8>,
    /// Its digest (Docker's image ID).
    pub config_digest: Digest,
    /// The OCI manifest.
    pub manifest: Vec<u8>,
    /// Its digest.
    pub manifest_digest: Digest,
    /// Each layer's blob, bottom first.
    pub layers: Vec<WrittenLayer>,
    /// The platform the config names.
    pub platform: Platform,
}

impl Resolution<'_> {
    /// The config and manifest of the image whose layers were written as `layers`.
    pub fn finish(&self, layers: Vec<WrittenLayer>) -> ResolvedImage {
        let config = self
            .image
            .config_bytes(layers.iter().map(|l| l.diff_id.clone()).collect());
        let config_digest = Digest::of(&config);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media_type::OCI_CONFIG.into(),
                digest: config_digest.clone(),
                size: config.len() as u64,
                annotations: BTreeMap::new(),
                platform: None,
                artifact_type: None,
            },
            layers: layers
                .iter()
                .zip(self.image.layers())
                .map(|(l, layer)| Descriptor {
                    media_type: l.compression.oci_media_type().into(),
                    digest: l.digest.clone(),
                    size: l.size,
                    annotations: layer.annotations().clone(),
                    platform: None,
                    artifact_type: None,
                })
                .collect(),
            annotations: self.image.annotations().clone(),
            artifact_type: None,
            subject: None,
        };
        let manifest = serde_json::to_vec(&manifest).expect("a manifest of strings serializes");
        ResolvedImage {
            config_digest,
            manifest_digest: Digest::of(&manifest),
            config,
            manifest,
            layers,
            platform: self.image.platform(),
        }
    }
}

/// An entry of an OCI index: a manifest or a nested index, and how it is named.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    /// Its media type.
    pub media_type: &'static str,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// The platform it is for, in a multi-platform index.
    pub platform: Option<Platform>,
    /// Its `org.opencontainers.image.ref.name` (a layout's tag).
    pub ref_name: Option<String>,
    /// Its `io.containerd.image.name` (the full name Docker loads it as).
    pub image_name: Option<String>,
}

impl IndexEntry {
    /// The entry for an image's manifest, unnamed.
    pub fn manifest(resolved: &ResolvedImage) -> Self {
        Self {
            media_type: media_type::OCI_MANIFEST,
            digest: resolved.manifest_digest.clone(),
            size: resolved.manifest.len() as u64,
            platform: None,
            ref_name: None,
            image_name: None,
        }
    }

    /// The entry for a nested index, unnamed.
    pub fn index(bytes: &[u8]) -> Self {
        Self {
            media_type: media_type::OCI_INDEX,
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            platform: None,
            ref_name: None,
            image_name: None,
        }
    }

    /// This entry named `tag`.
    pub fn named(mut self, tag: Option<&str>) -> Self {
        self.ref_name = tag.map(str::to_string);
        self
    }

    /// The descriptor of this entry.
    pub fn descriptor(&self) -> Descriptor {
        let mut annotations = BTreeMap::new();
        if let Some(full) = &self.image_name {
            annotations.insert(CONTAINERD_NAME.to_string(), full.clone());
        }
        if let Some(tag) = &self.ref_name {
            annotations.insert(REF_NAME.to_string(), tag.clone());
        }
        Descriptor {
            media_type: self.media_type.into(),
            digest: self.digest.clone(),
            size: self.size,
            annotations,
            platform: self.platform.as_ref().map(|p| DescriptorPlatform {
                architecture: p.architecture.clone(),
                os: p.os.clone(),
                variant: p.variant.clone(),
            }),
            artifact_type: None,
        }
    }
}

/// The OCI index of `entries`, in their order.
pub fn index(entries: &[IndexEntry]) -> Index {
    Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: entries.iter().map(IndexEntry::descriptor).collect(),
        annotations: BTreeMap::new(),
    }
}

/// The index of a multi-platform image: each image's manifest with its platform.
pub fn platform_index(images: &[ResolvedImage]) -> Index {
    let entries: Vec<IndexEntry> = images
        .iter()
        .map(|r| IndexEntry {
            platform: Some(r.platform.clone()),
            ..IndexEntry::manifest(r)
        })
        .collect();
    index(&entries)
}
