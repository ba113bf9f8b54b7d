//! Layers: where their bytes come from, and writing them out with digests computed on the way.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::cancel::Cancel;
use super::checked_tar::{CheckedTar, EntryError};
use super::compress::LayerCompression;
use super::digest::{Digest, HashingReader, HashingWriter};
use super::error::{Error, Result};
use super::layer_tar::{Entry, Ownership, write_layer_tar_owned};
use super::reference::Reference;

/// How a blob's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Recognises the compression from a blob's first bytes.
    pub fn sniff(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Self::None => "application/vnd.oci.image.layer.v1.tar",
            Self::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The compression a layer media type (OCI or Docker) names.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
            Some(Self::Gzip)
        } else if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
            Some(Self::Zstd)
        } else if media_type.ends_with(".tar") {
            Some(Self::None)
        } else {
            None
        }
    }
}

/// A byte range of a file: a blob on disk, possibly inside an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRange {
    /// The file holding the blob.
    pub path: PathBuf,
    /// Where the blob starts.
    pub offset: u64,
    /// How many bytes it has.
    pub size: u64,
}

impl FileRange {
    fn open(&self) -> Result<io::Take<File>> {
        let mut f = File::open(&self.path).map_err(Error::io("reading", &self.path))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(Error::io("reading", &self.path))?;
        Ok(f.take(self.size))
    }
}

/// Something that writes a layer's uncompressed tar on demand.
pub trait TarSource: Send + Sync + fmt::Debug {
    /// Writes the tar to `out`.
    fn write_tar(&self, out: &mut dyn Write, cancel: &Cancel) -> io::Result<()>;
}

/// A layer made of entries written by [`write_layer_tar_owned`].
#[derive(Debug)]
pub struct EntriesLayer {
    /// The entries, in any order.
    pub entries: Vec<Entry>,
    /// The mtime every entry gets.
    pub mtime: u64,
    /// Who owns which part of the tree (root owns the rest).
    pub owner: Option<Ownership>,
}

impl TarSource for EntriesLayer {
    fn write_tar(&self, out: &mut dyn Write, cancel: &Cancel) -> io::Result<()> {
        write_layer_tar_owned(
            self.entries.iter().cloned(),
            self.mtime,
            self.owner.as_ref(),
            out,
            cancel,
        )
    }
}

/// Where a layer's bytes come from.
#[derive(Clone, Debug)]
pub enum LayerSource {
    /// An existing blob, as stored by the image it came from.
    Blob {
        /// Where the bytes are.
        range: FileRange,
        /// How they are compressed.
        compression: Compression,
        /// The digest of the stored bytes, when the source named one.
        digest: Option<Digest>,
    },
    /// A tar made when the layer is written.
    Tar(Arc<dyn TarSource>),
    /// A blob a registry holds and this machine does not (a layer found in a remote cache):
    /// known by what it is, placed in that registry by mounting it or finding it there; its
    /// bytes are never read here, so any other write of it fails with [`Error::RemoteOnly`].
    Remote(WrittenLayer),
}

/// One image layer: its source and, once known, its uncompressed digest.
#[derive(Clone, Debug)]
pub struct Layer {
    source: LayerSource,
    diff_id: Option<Digest>,
    /// The diff_id found by the first write of a made tar, shared by clones: later writes (other
    /// outputs, the blob-cache lookup) know it without hashing the tar again.
    written_diff_id: Arc<OnceLock<Digest>>,
    description: String,
    origin: Option<Reference>,
    annotations: BTreeMap<String, String>,
}

/// The result of writing one layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenLayer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the bytes written.
    pub digest: Digest,
    /// Number of bytes written.
    pub size: u64,
    /// Compression of the bytes written.
    pub compression: Compression,
}

/// How a transport wants a layer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// An uncompressed tar (docker-archive).
    Uncompressed,
    /// Stored blobs as they are when already in this compression; the others, and new layers,
    /// compressed to it (OCI layouts, oci-archives, registries).
    Compressed(LayerCompression),
}

impl Default for Encoding {
    /// New layers gzip-compressed at the default level.
    fn default() -> Self {
        Self::Compressed(LayerCompression::default())
    }
}

impl Encoding {
    /// The compression new layer blobs get.
    pub fn target(self) -> LayerCompression {
        match self {
            Self::Uncompressed => LayerCompression::none(),
            Self::Compressed(c) => c,
        }
    }

    /// True when a stored blob in `compression` is written as it is.
    pub fn keeps(self, compression: Compression) -> bool {
        self.target().compression() == compression
    }
}

impl Layer {
    /// A layer read from a stored blob, with the diff_id its image's config promises.
    pub fn from_blob(
        source_blob: LayerSource,
        diff_id: Option<Digest>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            source: source_blob,
            diff_id,
            written_diff_id: Arc::default(),
            description: description.into(),
            origin: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A layer whose tar `source` writes when the image is written.
    pub fn from_tar_source(source: Arc<dyn TarSource>, description: impl Into<String>) -> Self {
        Self {
            source: LayerSource::Tar(source),
            diff_id: None,
            written_diff_id: Arc::default(),
            description: description.into(),
            origin: None,
            annotations: BTreeMap::new(),
        }
    }

    /// A layer of the given entries, all with `mtime`.
    pub fn from_entries(entries: Vec<Entry>, mtime: u64, description: impl Into<String>) -> Self {
        Self::from_tar_source(
            Arc::new(EntriesLayer {
                entries,
                mtime,
                owner: None,
            }),
            description,
        )
    }

    /// A layer that only `origin`'s registry holds, as `written` describes it (see
    /// [`LayerSource::Remote`]).
    pub fn remote(
        written: WrittenLayer,
        origin: Reference,
        description: impl Into<String>,
    ) -> Self {
        Self {
            diff_id: Some(written.diff_id.clone()),
            source: LayerSource::Remote(written),
            written_diff_id: Arc::default(),
            description: description.into(),
            origin: Some(origin),
            annotations: BTreeMap::new(),
        }
    }

    /// This layer with an annotation on its descriptor in the manifests written.
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The annotations its descriptor carries in the manifests written.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// The error a write of a [`LayerSource::Remote`] layer's bytes gives.
    fn remote_only(&self, written: &WrittenLayer) -> Error {
        Error::RemoteOnly {
            layer: self.description.clone(),
            digest: written.digest.clone(),
            registry: self
                .origin
                .as_ref()
                .map(|o| o.registry().to_string())
                .unwrap_or_default(),
        }
    }

    /// This layer as pulled from the repository `origin`, so a push to the same registry can
    /// mount it instead of uploading it.
    pub fn with_origin(mut self, origin: Reference) -> Self {
        self.origin = Some(origin);
        self
    }

    /// The repository the layer was pulled from, if any.
    pub fn origin(&self) -> Option<&Reference> {
        self.origin.as_ref()
    }

    /// The uncompressed digest, when known before writing (or from an earlier write).
    pub fn diff_id(&self) -> Option<&Digest> {
        self.diff_id.as_ref().or_else(|| self.written_diff_id.get())
    }

    /// What the layer is, for messages (`base layer 2`, `zstd-1.5.6-ha6fb4c9_0`).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Where the bytes come from.
    pub fn source(&self) -> &LayerSource {
        &self.source
    }

    /// Writes the layer to `out` as `encoding` asks, hashing as it streams, and checks the
    /// digests the source promised.
    pub fn write_to(
        &self,
        out: &mut dyn Write,
        encoding: Encoding,
        cancel: &Cancel,
    ) -> Result<WrittenLayer> {
        let io_err = |e: io::Error| Error::io("writing layer", &self.description)(e);
        let target = encoding.target();
        let (written, raw_digest) = match &self.source {
            LayerSource::Remote(written) => return Err(self.remote_only(written)),
            LayerSource::Tar(tar) => (
                target
                    .encode(out, |w| tar.write_tar(w, cancel))
                    .map_err(io_err)?,
                None,
            ),
            LayerSource::Blob {
                range, compression, ..
            } => {
                let src_err = |e: io::Error| Error::io("copying blob from", &range.path)(e);
                let mut src = HashingReader::new(range.open()?);
                let written = match compression {
                    Compression::None => {
                        target.encode(out, |w| copy(&mut CheckedTar::new(&mut src), w, cancel))
                    }
                    c if encoding.keeps(*c) => keep_compressed(&mut src, *c, out, cancel),
                    c => target.encode(out, |w| {
                        copy(&mut CheckedTar::new(decoder(*c, &mut src)?), w, cancel)
                    }),
                }
                .map_err(|e| self.read_error(e, src_err))?;
                let (digest, read) = src.finish();
                check_size(range, read)?;
                (written, Some(digest))
            }
        };
        if let (
            LayerSource::Blob {
                digest: Some(expected),
                ..
            },
            Some(actual),
        ) = (&self.source, &raw_digest)
        {
            check("digest", &self.description, expected, actual)?;
        }
        match self.diff_id() {
            Some(expected) => check("diff_id", &self.description, expected, &written.diff_id)?,
            None => {
                let _ = self.written_diff_id.set(written.diff_id.clone());
            }
        }
        Ok(written)
    }
}

impl Layer {
    /// Hands `consume` a reader of the layer's uncompressed tar, then reads what it left,
    /// checking the digests the source promised; returns what `consume` returned and the layer
    /// as an uncompressed write would give it. A stored blob is read in place; a made tar is
    /// produced on another thread through a pipe.
    pub fn read_tar<T: Send>(
        &self,
        cancel: &Cancel,
        consume: impl FnOnce(&mut dyn Read) -> io::Result<T> + Send,
    ) -> Result<(T, WrittenLayer)> {
        let read_err = |e: io::Error| Error::io("reading layer", &self.description)(e);
        if let LayerSource::Remote(written) = &self.source {
            return Err(self.remote_only(written));
        }
        let LayerSource::Blob {
            range, compression, ..
        } = &self.source
        else {
            let (mut reader, mut writer) = io::pipe().map_err(read_err)?;
            return std::thread::scope(|s| {
                let producer =
                    s.spawn(move || self.write_to(&mut writer, Encoding::Uncompressed, cancel));
                let consumed = consume(&mut reader)
                    .and_then(|t| copy(&mut reader, &mut io::sink(), cancel).map(|()| t));
                drop(reader);
                let written = producer
                    .join()
                    .map_err(|_| Error::invalid(&self.description, "reading the layer failed"))??;
                Ok((consumed.map_err(read_err)?, written))
            });
        };
        let mut src = HashingReader::new(range.open()?);
        let (consumed, diff_id, size) = {
            let mut tar = HashingReader::new(CheckedTar::new(
                decoder(*compression, &mut src).map_err(read_err)?,
            ));
            let consumed = consume(&mut tar).map_err(|e| self.read_error(e, read_err))?;
            copy(&mut tar, &mut io::sink(), cancel).map_err(|e| self.read_error(e, read_err))?;
            let (diff_id, size) = tar.finish();
            (consumed, diff_id, size)
        };
        let (digest, read) = src.finish();
        check_size(range, read)?;
        if let LayerSource::Blob {
            digest: Some(expected),
            ..
        } = &self.source
        {
            check("digest", &self.description, expected, &digest)?;
        }
        match self.diff_id() {
            Some(expected) => check("diff_id", &self.description, expected, &diff_id)?,
            None => {
                let _ = self.written_diff_id.set(diff_id.clone());
            }
        }
        Ok((
            consumed,
            WrittenLayer {
                diff_id: diff_id.clone(),
                digest: diff_id,
                size,
                compression: Compression::None,
            },
        ))
    }
}

impl Layer {
    /// `e` as [`Error::UnsafeLayer`] when the check refused the layer, else as `otherwise` makes it.
    fn read_error(&self, e: io::Error, otherwise: impl FnOnce(io::Error) -> Error) -> Error {
        match e.downcast::<EntryError>().map(Box::new) {
            Ok(source) => Error::UnsafeLayer {
                digest: match (&self.source, self.diff_id()) {
                    (
                        LayerSource::Blob {
                            digest: Some(d), ..
                        },
                        _,
                    )
                    | (_, Some(d)) => d.to_string(),
                    _ => "of unknown digest".into(),
                },
                layer: self.description.clone(),
                source,
            },
            Err(e) => otherwise(e),
        }
    }
}

/// Copies a compressed blob as it is, hashing the stored bytes and the decompressed stream.
fn keep_compressed(
    src: &mut dyn Read,
    compression: Compression,
    out: &mut dyn Write,
    cancel: &Cancel,
) -> io::Result<WrittenLayer> {
    let mut out = HashingWriter::new(out);
    let mut uncompressed = CheckedTar::new(HashingReader::new(decoder(
        compression,
        Tee {
            src,
            copy: &mut out,
        },
    )?));
    copy(&mut uncompressed, &mut io::sink(), cancel)?;
    let (diff_id, _) = uncompressed.into_inner().finish();
    let (digest, size, _) = out.finish();
    Ok(WrittenLayer {
        diff_id,
        digest,
        size,
        compression,
    })
}

/// A reader that copies what it reads to a writer.
struct Tee<'a> {
    src: &'a mut dyn Read,
    copy: &'a mut dyn Write,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A read-side decompressor for `compression` (a no-op for `None`).
fn decoder<'a, R: Read + 'a>(compression: Compression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    let r = io::BufReader::with_capacity(256 * 1024, r);
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Copies `src` to `dst`, checking for cancellation between chunks.
fn copy(src: &mut dyn Read, dst: &mut dyn Write, cancel: &Cancel) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        cancel.check()?;
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && !cancel.is_cancelled() => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
    }
}

fn check(what: &'static str, layer: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what,
            layer: layer.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        })
    }
}

fn check_size(range: &FileRange, read: u64) -> Result<()> {
    if read == range.size {
        Ok(())
    } else {
        Err(Error::invalid(
            &range.path,
            format!(
                "blob at offset {} is truncated: read {read} of {} bytes",
                range.offset, range.size
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer_tar::{Entry, EntryData};

    fn sample_tar() -> Vec<u8> {
        let mut out = Vec::new();
        let entries = vec![Entry {
            path: "a/b.txt".into(),
            data: EntryData::Bytes(b"hello".repeat(1000)),
            mode: 0o644,
        }];
        crate::image::layer_tar::write_layer_tar(entries, 0, &mut out, &Cancel::new()).unwrap();
        out
    }

    fn blob(
        dir: &std::path::Path,
        bytes: &[u8],
        compression: Compression,
        diff_id: Option<Digest>,
    ) -> Layer {
        let path = dir.join("blob");
        std::fs::write(&path, bytes).unwrap();
        Layer::from_blob(
            LayerSource::Blob {
                range: FileRange {
                    path,
                    offset: 0,
                    size: bytes.len() as u64,
                },
                compression,
                digest: Some(Digest::of(bytes)),
            },
            diff_id,
            "test blob",
        )
    }

    #[test]
    fn every_encoding_keeps_the_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sample_tar();
        let diff_id = Digest::of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
        for (bytes, compression) in [
            (&tar, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let layer = blob(dir.path(), bytes, compression, Some(diff_id.clone()));
            let mut out = Vec::new();
            let w = layer
                .write_to(&mut out, Encoding::Uncompressed, &Cancel::new())
                .unwrap();
            assert_eq!(out, tar, "{compression:?} decompressed");
            assert_eq!(w.diff_id, diff_id);
            for target in [
                LayerCompression::gzip(1),
                LayerCompression::zstd(3),
                LayerCompression::none(),
            ] {
                let mut out = Vec::new();
                let w = layer
                    .write_to(&mut out, Encoding::Compressed(target), &Cancel::new())
                    .unwrap();
                assert_eq!(w.diff_id, diff_id);
                assert_eq!(w.digest, Digest::of(&out));
                assert_eq!(
                    w.compression,
                    target.compression(),
                    "{compression:?} to {target}"
                );
                assert_eq!(Compression::sniff(&out), target.compression());
                if compression == target.compression() {
                    assert_eq!(&out, bytes, "{compression:?} kept as it is");
                }
            }
        }
    }

    #[test]
    fn a_wrong_diff_id_or_digest_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sample_tar();
        let layer = blob(
            dir.path(),
            &tar,
            Compression::None,
            Some(Digest::of(b"other")),
        );
        let err = layer
            .write_to(&mut Vec::new(), Encoding::Uncompressed, &Cancel::new())
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::DigestMismatch {
                    what: "diff_id",
                    ..
                }
            ),
            "{err}"
        );
        // A blob whose bytes changed after its digest was taken (inside a file's data).
        let layer = blob(dir.path(), &tar, Compression::None, None);
        let mut changed = tar.clone();
        changed[1100] ^= 1;
        std::fs::write(dir.path().join("blob"), changed).unwrap();
        let err = layer
            .write_to(&mut Vec::new(), Encoding::Uncompressed, &Cancel::new())
            .unwrap_err();
        assert!(
            matches!(err, Error::DigestMismatch { what: "digest", .. }),
            "{err}"
        );
    }
}
