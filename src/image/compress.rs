//! How new layer blobs are compressed: gzip (in parallel, [`super::gzip`]), zstd or not at all,
//! at a level; parsed from `gzip`, `gzip:1`, `zstd:3`, `none`. [`LayerWriter`] compresses as
//! the tar is written and hashes both forms in the same pass.
//!
//! zstd is the `zstd` crate's multithreaded encoder (zstdmt: a pool of workers, one job of
//! [`ZSTD_JOB`] bytes each, emitted in order), with the job size pinned: its bytes are the
//! same on 1, 2 and 8 threads (tested), unlike a single-threaded frame's, so stored zstd
//! blobs are remembered under another name (`store::blobs`). Measured by
//! `scripts/bench.d/compress.sh` (500 MB of `tar c /usr/lib`, 2 threads on 2 shared cores
//! under load, median of 3): level 1 188 MB/s (`zstd -1 -T2`: 279), level 3 147 MB/s
//! (`zstd -3 -T2`: 222), both within 0.5% of the command line's size and 6-12% smaller than
//! pigz at the same level. Writing zstd ourselves would mean independent frames per block
//! (larger output) or reimplementing zstdmt's overlapped jobs; the crate's is maintained and
//! deterministic.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use super::cancel::Cancel;
use super::digest::HashingWriter;
use super::gzip::{ParallelGzip, default_threads};
use super::layer::{Compression, WrittenLayer};

/// The gzip level used when none is given. Measured on the compression of a 73 MB environment
/// (ten conda-forge packages and a base) into an OCI layout on 2 cores: level 1 took 0.81 s for
/// 33.4 MB, level 3 1.33 s for 26.7 MB, level 6 1.55 s for 25.9 MB (medians of 8). Level 3 is
/// within 3% of level 6's size for less time; level 1's extra 25% is paid by every push and pull.
pub const DEFAULT_GZIP_LEVEL: u32 = 3;

/// The zstd level used when none is given (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;

/// A compression and its level, for the layers a write compresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerCompression {
    compression: Compression,
    level: u32,
}

impl Default for LayerCompression {
    /// gzip at [`DEFAULT_GZIP_LEVEL`].
    fn default() -> Self {
        Self::gzip(DEFAULT_GZIP_LEVEL)
    }
}

/// Why a `--compression` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a layer compression: {reason}")]
pub struct CompressionError {
    input: String,
    reason: String,
}

impl LayerCompression {
    /// gzip at `level` (clamped to 1-9).
    pub fn gzip(level: u32) -> Self {
        Self {
            compression: Compression::Gzip,
            level: level.clamp(1, 9),
        }
    }

    /// zstd at `level` (clamped to 1-22).
    pub fn zstd(level: u32) -> Self {
        Self {
            compression: Compression::Zstd,
            level: level.clamp(1, 22),
        }
    }

    /// Plain tars.
    pub fn none() -> Self {
        Self {
            compression: Compression::None,
            level: 0,
        }
    }

    /// The compression.
    pub fn compression(self) -> Compression {
        self.compression
    }

    /// The level (0 for [`Compression::None`]).
    pub fn level(self) -> u32 {
        self.level
    }

    /// A short name for cache keys and messages: `gzip-1`, `zstd-3`, `none`.
    pub fn key(self) -> String {
        match self.compression {
            Compression::None => "none".into(),
            Compression::Gzip => format!("gzip-{}", self.level),
            Compression::Zstd => format!("zstd-{}", self.level),
        }
    }

    /// Writes what `produce` writes to `out` in this compression, hashing both forms.
    pub fn encode(
        self,
        out: &mut dyn Write,
        produce: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<WrittenLayer> {
        let mut writer = self.writer(out, None)?;
        produce(&mut writer)?;
        Ok(writer.finish()?.0)
    }

    /// A writer that compresses the tar written to it into `out` as it comes, on the
    /// machine's cores (at most 8), stopping with [`Cancel::check_in_write`]'s error once `cancel` is set.
    pub fn writer<W: Write>(self, out: W, cancel: Option<&Cancel>) -> io::Result<LayerWriter<W>> {
        self.writer_on(out, default_threads(), cancel)
    }

    /// [`Self::writer`] on `threads` threads; the bytes do not depend on `threads`.
    pub fn writer_on<W: Write>(
        self,
        out: W,
        threads: usize,
        cancel: Option<&Cancel>,
    ) -> io::Result<LayerWriter<W>> {
        let compressed = HashingWriter::new(out);
        let stage = match self.compression {
            Compression::None => Stage::Plain(compressed),
            Compression::Gzip => {
                let gzip = ParallelGzip::with_threads(compressed, self.level, threads);
                let gzip = match cancel {
                    Some(cancel) => gzip.with_cancel(cancel.clone()),
                    None => gzip,
                };
                Stage::Gzip(HashingWriter::new(gzip))
            }
            Compression::Zstd => {
                let mut zstd = zstd::stream::write::Encoder::new(compressed, self.level as i32)?;
                zstd.multithread(threads.clamp(1, 64) as u32)?;
                zstd.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
                Stage::Zstd(HashingWriter::new(zstd))
            }
        };
        Ok(LayerWriter {
            stage,
            cancel: cancel.cloned(),
        })
    }
}

/// The uncompressed bytes of one zstd job, compressed on a worker of its own. Pinned (zstd's
/// default depends on the level's window), so the bytes depend on neither the thread count
/// nor zstd's defaults, and at most a job per worker is held in memory.
pub const ZSTD_JOB: u32 = 8 << 20;

/// A writer of one layer blob ([`LayerCompression::writer`]): the tar written to it is
/// compressed as it comes, and both forms are hashed in the same pass.
pub struct LayerWriter<W: Write> {
    stage: Stage<W>,
    cancel: Option<Cancel>,
}

enum Stage<W: Write> {
    Plain(HashingWriter<W>),
    Gzip(HashingWriter<ParallelGzip<HashingWriter<W>>>),
    Zstd(HashingWriter<zstd::stream::write::Encoder<'static, HashingWriter<W>>>),
}

impl<W: Write> LayerWriter<W> {
    /// Ends the blob: what was written (both digests, the size, the compression) and `out`.
    pub fn finish(self) -> io::Result<(WrittenLayer, W)> {
        let (diff_id, compressed, compression) = match self.stage {
            Stage::Plain(w) => {
                let (digest, size, out) = w.finish();
                let written = WrittenLayer {
                    diff_id: digest.clone(),
                    digest,
                    size,
                    compression: Compression::None,
                };
                return Ok((written, out));
            }
            Stage::Gzip(tar) => {
                let (diff_id, _, gzip) = tar.finish();
                (diff_id, gzip.finish()?, Compression::Gzip)
            }
            Stage::Zstd(tar) => {
                let (diff_id, _, zstd) = tar.finish();
                (diff_id, zstd.finish()?, Compression::Zstd)
            }
        };
        let (digest, size, out) = compressed.finish();
        let written = WrittenLayer {
            diff_id,
            digest,
            size,
            compression,
        };
        Ok((written, out))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stage {
            Stage::Plain(w) => w.write(buf),
            // Checked here per write, in the gzip writer per block.
            Stage::Gzip(w) => w.write(buf),
            Stage::Zstd(w) => {
                if let Some(cancel) = &self.cancel {
                    cancel.check_in_write()?;
                }
                w.write(buf)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(w) => w.flush(),
            Stage::Gzip(w) => w.flush(),
            Stage::Zstd(w) => w.flush(),
        }
    }
}

impl FromStr for LayerCompression {
    type Err = CompressionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CompressionError {
            input: input.to_string(),
            reason,
        };
        let (name, given) = match input.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (input, None),
        };
        let level = |range: std::ops::RangeInclusive<u32>, default: u32| match given {
            None => Ok(default),
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| range.contains(l))
                .ok_or_else(|| {
                    err(format!(
                        "the {name} level must be {} to {}, not `{l}`",
                        range.start(),
                        range.end()
                    ))
                }),
        };
        match name {
            "gzip" => Ok(Self::gzip(level(1..=9, DEFAULT_GZIP_LEVEL)?)),
            "zstd" => Ok(Self::zstd(level(1..=22, DEFAULT_ZSTD_LEVEL)?)),
            "none" if given.is_none() => Ok(Self::none()),
            "none" => Err(err("`none` takes no level".into())),
            _ => Err(err(
                "use `gzip`, `zstd` or `none`, with an optional level: `gzip:1`, `zstd:3`".into(),
            )),
        }
    }
}

impl fmt::Display for LayerCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.compression {
            Compression::None => write!(f, "none"),
            Compression::Gzip => write!(f, "gzip:{}", self.level),
            Compression::Zstd => write!(f, "zstd:{}", self.level),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn parses_names_and_levels() {
        assert_eq!("gzip".parse(), Ok(LayerCompression::default()));
        assert_eq!("gzip:6".parse(), Ok(LayerCompression::gzip(6)));
        assert_eq!("zstd".parse(), Ok(LayerCompression::zstd(3)));
        assert_eq!("zstd:19".parse(), Ok(LayerCompression::zstd(19)));
        assert_eq!("none".parse(), Ok(LayerCompression::none()));
        for bad in ["lz4", "gzip:99", "gzip:0", "gzip:", "zstd:x", "none:1", ""] {
            let err = bad.parse::<LayerCompression>().unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn each_compression_round_trips() {
        let data = b"conda-docker ".repeat(100_000);
        for c in [
            LayerCompression::gzip(1),
            LayerCompression::zstd(3),
            LayerCompression::none(),
        ] {
            let mut out = Vec::new();
            let w = c.encode(&mut out, |w| w.write_all(&data)).unwrap();
            assert_eq!(w.diff_id, super::super::Digest::of(&data));
            assert_eq!(w.digest, super::super::Digest::of(&out));
            assert_eq!(w.compression, Compression::sniff(&out), "{c}");
            let mut back = Vec::new();
            match c.compression() {
                Compression::Gzip => {
                    flate2::read::GzDecoder::new(out.as_slice())
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zstd => back = zstd::decode_all(out.as_slice()).unwrap(),
                Compression::None => back = out,
            }
            assert_eq!(back, data);
        }
    }

    /// Each size that puts a block or job boundary at an edge, through the streamed writer on 1,
    /// 2 and 8 threads: the same bytes, which decompress to the input, and the digests the
    /// writer reports are the bytes'.
    #[test]
    fn streamed_blobs_round_trip_and_ignore_the_thread_count() {
        use crate::image::gzip::BLOCK;
        let job = ZSTD_JOB as usize;
        let sizes = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 9 * BLOCK + 7];
        let zstd_sizes = [job - 1, job, job + 1, 2 * job + 12345];
        for c in [LayerCompression::gzip(3), LayerCompression::zstd(3)] {
            let extra: &[usize] = if c.compression() == Compression::Zstd {
                &zstd_sizes
            } else {
                &[]
            };
            for &len in sizes.iter().chain(extra) {
                let data = crate::image::gzip::tests::sample(len);
                let blob = |threads: usize| {
                    let mut w = c.writer_on(Vec::new(), threads, None).unwrap();
                    for piece in data.chunks(100_003) {
                        w.write_all(piece).unwrap();
                    }
                    w.finish().unwrap()
                };
                let (written, one) = blob(1);
                assert_eq!(written.diff_id, super::super::Digest::of(&data));
                assert_eq!(written.digest, super::super::Digest::of(&one));
                for threads in [2, 8] {
                    let other = blob(threads).1;
                    assert!(
                        other == one,
                        "{c} of {len} bytes differs on {threads} threads"
                    );
                }
                let back = match c.compression() {
                    Compression::Zstd => zstd::decode_all(one.as_slice()).unwrap(),
                    _ => {
                        let mut back = Vec::new();
                        flate2::read::GzDecoder::new(one.as_slice())
                            .read_to_end(&mut back)
                            .unwrap();
                        back
                    }
                };
                assert!(back == data, "{c} of {len} bytes does not round-trip");
            }
        }
    }

    #[test]
    fn a_cancelled_zstd_writer_stops() {
        let cancel = Cancel::new();
        let mut w = LayerCompression::zstd(1)
            .writer_on(Vec::new(), 2, Some(&cancel))
            .unwrap();
        w.write_all(&[1u8; 4096]).unwrap();
        cancel.cancel();
        let err = w.write_all(&[1u8; 4096]).unwrap_err();
        assert!(crate::image::cancel::is_cancelled(&err), "{err}");
    }
}
