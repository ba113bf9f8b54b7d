//! Parallel gzip: the stream is cut into 1 MiB blocks, each deflated on its own core and joined
//! with sync flushes into one gzip member (as pigz does). Blocks do not depend on each other or
//! on the thread count, so the output is the same on every machine.
//!
//! Not `gzp`: its compressor owns the output writer on a thread (`'static`), which does not fit
//! streaming into a borrowed writer while hashing, and its pure-Rust mode has no dictionaries
//! either; this is ~100 lines over flate2's raw deflate.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per block.
const BLOCK: usize = 256 << 10;

/// A gzip writer that compresses blocks on several threads.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at `level` (0-9) on up to the machine's cores (at most 8).
    pub fn new(out: W, level: u32) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        Self::with_threads(out, level, threads)
    }

    /// As [`Self::new`], on `threads` threads; the output does not depend on `threads`.
    pub fn with_threads(out: W, level: u32, threads: usize) -> Self {
        Self {
            out,
            level,
            threads: threads.max(1),
            pending: Vec::new(),
            current: Vec::with_capacity(BLOCK),
            crc: Crc::new(),
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // magic, deflate, no flags, mtime 0, no extra flags, OS unknown: fixed bytes.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Compresses the pending blocks (all but possibly a final one) in parallel and writes them.
    fn flush_pending(&mut self, last: Option<Vec<u8>>) -> io::Result<()> {
        self.write_header()?;
        let blocks = std::mem::take(&mut self.pending);
        let level = self.level;
        let n = blocks.len();
        let compressed: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = blocks
                .iter()
                .map(|b| s.spawn(move || deflate_block(b, level, false)))
                .collect();
            let last = last.as_ref().map(|b| deflate_block(b, level, true));
            let mut results: Vec<io::Result<Vec<u8>>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("a compression thread panicked")))
                })
                .collect();
            results.extend(last);
            results
        });
        debug_assert!(compressed.len() >= n);
        for block in compressed {
            self.out.write_all(&block?)?;
        }
        Ok(())
    }

    /// Ends the gzip member and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let last = std::mem::take(&mut self.current);
        self.flush_pending(Some(last))?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.current.len() == BLOCK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK));
            self.pending.push(full);
            if self.pending.len() >= self.threads {
                self.flush_pending(None)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deflates one block as raw deflate: ended by a sync flush, or as the final block.
fn deflate_block(input: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.len() == out.capacity() {
            out.reserve(64 * 1024);
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // A sync flush is complete when all input is in and the output buffer was not filled.
            _ if !last && done_input && out.len() < out.capacity() => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        let mut state = 7u32;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 3 == 0 {
                    (state >> 16) as u8
                } else {
                    b"conda-docker"[i % 12]
                }
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzip::with_threads(Vec::new(), 6, threads);
        for piece in data.chunks(chunk.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_ignores_the_thread_count() {
        for len in [0, 10, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345] {
            let data = sample(len);
            let one = gzip(&data, 1, 4096);
            assert_eq!(
                one,
                gzip(&data, 4, 100_000),
                "output depends on threads (len {len})"
            );
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(one.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }
}
