//! Layers: where their bytes come from, and writing them out with digests computed on the way.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::cancel::Cancel;
use super::digest::{Digest, HashingWriter};
use super::error::{Error, Result};
use super::layer_tar::{Entry, write_layer_tar};

/// How a blob's bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// A layer made of entries written by [`write_layer_tar`].
#[derive(Debug)]
pub struct EntriesLayer {
    /// The entries, in any order.
    pub entries: Vec<Entry>,
    /// The mtime every entry gets.
    pub mtime: u64,
}

impl TarSource for EntriesLayer {
    fn write_tar(&self, out: &mut dyn Write, cancel: &Cancel) -> io::Result<()> {
        write_layer_tar(self.entries.iter().cloned(), self.mtime, out, cancel)
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
}

/// One image layer: its source and, once known, its uncompressed digest.
#[derive(Clone, Debug)]
pub struct Layer {
    source: LayerSource,
    diff_id: Option<Digest>,
    description: String,
}

/// The result of writing one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Existing blobs as they are; new layers gzip-compressed (OCI layout, registries).
    KeepOrGzip,
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
            description: description.into(),
        }
    }

    /// A layer whose tar `source` writes when the image is written.
    pub fn from_tar_source(source: Arc<dyn TarSource>, description: impl Into<String>) -> Self {
        Self {
            source: LayerSource::Tar(source),
            diff_id: None,
            description: description.into(),
        }
    }

    /// A layer of the given entries, all with `mtime`.
    pub fn from_entries(entries: Vec<Entry>, mtime: u64, description: impl Into<String>) -> Self {
        Self::from_tar_source(Arc::new(EntriesLayer { entries, mtime }), description)
    }

    /// The uncompressed digest, when known before writing.
    pub fn diff_id(&self) -> Option<&Digest> {
        self.diff_id.as_ref()
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
        let written = match &self.source {
            LayerSource::Tar(tar) => self.write_tar_source(tar.as_ref(), out, encoding, cancel)?,
            LayerSource::Blob {
                range,
                compression,
                digest,
            } => {
                let written = copy_blob(range, *compression, out, encoding, cancel)?;
                if let (Some(expected), Some(actual)) = (digest, &written.1) {
                    check("digest", &self.description, expected, actual)?;
                }
                written.0
            }
        };
        if let Some(expected) = &self.diff_id {
            check("diff_id", &self.description, expected, &written.diff_id)?;
        }
        Ok(written)
    }

    fn write_tar_source(
        &self,
        tar: &dyn TarSource,
        out: &mut dyn Write,
        encoding: Encoding,
        cancel: &Cancel,
    ) -> Result<WrittenLayer> {
        let io_err = |e: io::Error| io_error(&self.description, e);
        match encoding {
            Encoding::Uncompressed => {
                let mut w = HashingWriter::new(out);
                tar.write_tar(&mut w, cancel).map_err(io_err)?;
                let (digest, size, _) = w.finish();
                Ok(WrittenLayer {
                    diff_id: digest.clone(),
                    digest,
                    size,
                    compression: Compression::None,
                })
            }
            Encoding::KeepOrGzip => {
                let compressed = HashingWriter::new(out);
                let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::new(6));
                let mut tar_w = HashingWriter::new(gz);
                tar.write_tar(&mut tar_w, cancel).map_err(io_err)?;
                let (diff_id, _, gz) = tar_w.finish();
                let (digest, size, _) = gz.finish().map_err(io_err)?.finish();
                Ok(WrittenLayer {
                    diff_id,
                    digest,
                    size,
                    compression: Compression::Gzip,
                })
            }
        }
    }
}

fn io_error(layer: &str, e: io::Error) -> Error {
    Error::io("writing layer", layer)(e)
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

/// A sink that only counts and hashes.
fn null_hasher() -> HashingWriter<io::Sink> {
    HashingWriter::new(io::sink())
}

fn decoder<'a, W: Write + 'a>(
    compression: Compression,
    w: W,
) -> io::Result<Box<dyn FinishWrite<W> + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(Plain(w)),
        Compression::Gzip => Box::new(flate2::write::MultiGzDecoder::new(w)),
        Compression::Zstd => Box::new(zstd::stream::write::Decoder::new(w)?),
    })
}

/// A write-side decompressor that hands back its inner writer when done.
trait FinishWrite<W>: Write {
    fn finish_into(self: Box<Self>) -> io::Result<W>;
}

struct Plain<W>(W);
impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write> FinishWrite<W> for Plain<W> {
    fn finish_into(self: Box<Self>) -> io::Result<W> {
        Ok(self.0)
    }
}
impl<W: Write> FinishWrite<W> for flate2::write::MultiGzDecoder<W> {
    fn finish_into(self: Box<Self>) -> io::Result<W> {
        (*self).finish()
    }
}
impl<W: Write> FinishWrite<W> for zstd::stream::write::Decoder<'_, W> {
    fn finish_into(mut self: Box<Self>) -> io::Result<W> {
        self.flush()?;
        Ok((*self).into_inner())
    }
}

/// Copies a stored blob to `out`; returns what was written and the digest of the stored bytes.
fn copy_blob(
    range: &FileRange,
    compression: Compression,
    out: &mut dyn Write,
    encoding: Encoding,
    cancel: &Cancel,
) -> Result<(WrittenLayer, Option<Digest>)> {
    let mut src = range.open()?;
    let io_err = |e: io::Error| Error::io("copying blob from", &range.path)(e);
    let mut raw = null_hasher();
    let mut buf = vec![0u8; 256 * 1024];
    let decompress = encoding == Encoding::Uncompressed || compression == Compression::None;
    if decompress {
        // Output is the uncompressed tar: its digest is the diff_id.
        let mut dec = decoder(compression, HashingWriter::new(out)).map_err(io_err)?;
        loop {
            cancel.check().map_err(io_err)?;
            let n = src.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            raw.write_all(&buf[..n]).map_err(io_err)?;
            dec.write_all(&buf[..n]).map_err(io_err)?;
        }
        let (diff_id, size, _) = dec.finish_into().map_err(io_err)?.finish();
        let (raw_digest, raw_size, _) = raw.finish();
        check_size(range, raw_size)?;
        Ok((
            WrittenLayer {
                digest: diff_id.clone(),
                diff_id,
                size,
                compression: Compression::None,
            },
            Some(raw_digest),
        ))
    } else {
        // Output keeps the compression: hash the stored bytes and the decompressed stream.
        let mut out = HashingWriter::new(out);
        let mut dec = decoder(compression, null_hasher()).map_err(io_err)?;
        loop {
            cancel.check().map_err(io_err)?;
            let n = src.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(io_err)?;
            dec.write_all(&buf[..n]).map_err(io_err)?;
        }
        let (diff_id, _, _) = dec.finish_into().map_err(io_err)?.finish();
        let (digest, size, _) = out.finish();
        check_size(range, size)?;
        Ok((
            WrittenLayer {
                diff_id,
                digest: digest.clone(),
                size,
                compression,
            },
            Some(digest),
        ))
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
