//! Parallel gzip, streamed: the stream is cut into 256 KiB blocks, each deflated on its own
//! (no dictionary) and ended by a sync flush, all joined into one gzip member, as pigz does.
//! A pool of workers, started with the stream and fed blocks through a channel, compresses
//! them while the writer emits finished blocks in order and later ones are still being
//! compressed; at most [`IN_FLIGHT`] blocks per worker are in flight, so memory stays bounded
//! whatever the layer's size. Blocks depend on nothing but their bytes and the level, so the
//! output is the same on every machine and for every thread count (and the same bytes as the
//! batch compressor this replaced: image digests pinned before do not change).
//!
//! Measured by `scripts/bench.d/compress.sh` (500 MB of `tar c /usr/lib`, 2 threads on 2
//! shared cores, load 6-9 from other builds, median of 3; MB/s of input, size against pigz's):
//!
//! | level | this module    | gzp 2.0.4 (zlib-rs) | pigz -p2       |
//! |-------|----------------|---------------------|----------------|
//! | 1     | 106.9, 1.139   | 110.7, 1.144        | 78.3, 1.000    |
//! | 3     | 73.8, 0.987    | 82.6, 0.992         | 62.9, 1.000    |
//!
//! Not `gzp`, though it was 4-12% faster here (within the noise of that load): its compressor
//! owns the output writer on a thread of its own (`W: Send + 'static`), which does not fit
//! streaming into a borrowed writer (a temporary file, a hasher) as the tar is made, its
//! blocks take the previous block's tail as a dictionary, so its bytes would differ from
//! the digests pinned in tests and docs, and it brings flume, core_affinity and num_cpus for
//! what is ~150 lines here. Level 1's size is zlib-rs's fast strategy (as before), not the
//! block structure: pigz -1 is zlib's.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::cancel::Cancel;

/// Uncompressed bytes per block.
pub const BLOCK: usize = 256 << 10;

/// Blocks in flight per worker: one being compressed, one queued behind it, so no worker
/// waits on the writer while the writer waits on the oldest block.
pub const IN_FLIGHT: usize = 2;

/// A block to deflate, and where its result goes.
struct Job {
    input: Vec<u8>,
    last: bool,
    done: SyncSender<Done>,
}

/// A deflated block, with its input buffer handed back for reuse.
struct Done {
    input: Vec<u8>,
    output: io::Result<Vec<u8>>,
}

/// The workers of one stream, started as blocks arrive (a small layer starts one), ended and
/// joined once when the stream is dropped.
struct Pool {
    level: u32,
    max: usize,
    jobs: Option<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(level: u32, max: usize) -> Self {
        let (jobs, queue) = channel();
        Self {
            level,
            max: max.max(1),
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            workers: Vec::new(),
        }
    }

    /// Queues `job`, starting one more worker when all are busy and fewer than `max` run.
    fn submit(&mut self, job: Job, busy: usize) -> io::Result<()> {
        if busy >= self.workers.len() && self.workers.len() < self.max {
            let (queue, level) = (self.queue.clone(), self.level);
            let worker = std::thread::Builder::new()
                .name("gzip".into())
                .spawn(move || work(&queue, level))?;
            self.workers.push(worker);
        }
        let stopped = || io::Error::other("the gzip workers stopped");
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A worker: deflates the blocks it takes from `queue` until the stream is dropped.
fn work(queue: &Mutex<Receiver<Job>>, level: u32) {
    let mut deflate = Compress::new(Compression::new(level), false);
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        deflate.reset();
        let output = deflate_block(&mut deflate, &job.input, job.last);
        let _ = job.done.send(Done {
            input: job.input,
            output,
        });
    }
}

/// A gzip writer that compresses blocks on a pool of workers while it is written to.
pub struct ParallelGzip<W: Write> {
    out: W,
    pool: Pool,
    in_flight: VecDeque<Receiver<Done>>,
    spare: Vec<Vec<u8>>,
    current: Vec<u8>,
    crc: Crc,
    header_written: bool,
    cancel: Option<Cancel>,
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at `level` (0-9) on up to the machine's cores (at most 8).
    pub fn new(out: W, level: u32) -> Self {
        Self::with_threads(out, level, default_threads())
    }

    /// As [`Self::new`], on `threads` workers; the output does not depend on `threads`.
    pub fn with_threads(out: W, level: u32, threads: usize) -> Self {
        Self {
            out,
            pool: Pool::new(level, threads),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            current: Vec::with_capacity(BLOCK),
            crc: Crc::new(),
            header_written: false,
            cancel: None,
        }
    }

    /// This writer, failing with [`Cancel::check_in_write`]'s error once `cancel` is set (checked
    /// before each block is queued).
    #[must_use]
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
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

    /// Queues the current block (`last`: the final one), first writing out the oldest blocks
    /// while the pool has its fill of them.
    fn queue_current(&mut self, last: bool) -> io::Result<()> {
        if let Some(cancel) = &self.cancel {
            cancel.check_in_write()?;
        }
        self.write_header()?;
        while self.in_flight.len() >= self.pool.max * IN_FLIGHT {
            self.write_oldest()?;
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK));
        let input = std::mem::replace(&mut self.current, next);
        let (done, result) = sync_channel(1);
        let busy = self.in_flight.len();
        self.pool.submit(Job { input, last, done }, busy)?;
        self.in_flight.push_back(result);
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it out.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(result) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = result
            .recv()
            .map_err(|_| io::Error::other("a gzip worker stopped (it panicked)"))?;
        let mut input = done.input;
        input.clear();
        self.spare.push(input);
        self.out.write_all(&done.output?)
    }

    /// Ends the gzip member, waits for every block, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.queue_current(true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        let Self { out, pool, .. } = self;
        drop(pool);
        Ok(out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.current.len() == BLOCK {
            self.queue_current(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The machine's cores, at most 8: how many workers a stream gets by default.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// Deflates one block with `c` (fresh or reset) as raw deflate: ended by a sync flush, or as
/// the final block.
fn deflate_block(c: &mut Compress, input: &[u8], last: bool) -> io::Result<Vec<u8>> {
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
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    pub(crate) fn sample(len: usize) -> Vec<u8> {
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

    fn gzip(data: &[u8], level: u32, threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzip::with_threads(Vec::new(), level, threads);
        for piece in data.chunks(chunk.max(1)) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_ignores_the_thread_count() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 21 * BLOCK + 12345] {
            let data = sample(len);
            let one = gzip(&data, 6, 1, 4096);
            for (threads, chunk) in [(2, 100_000), (8, 3 * BLOCK + 5)] {
                let other = gzip(&data, 6, threads, chunk);
                assert!(one == other, "output depends on threads (len {len})");
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(one.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "len {len} does not round-trip");
        }
    }

    /// The digests of the batch compressor this pool replaced, for the same inputs: layer
    /// digests pinned in tests and docs stay what they were.
    #[test]
    fn keeps_the_bytes_of_the_batch_compressor() {
        let pinned = [
            (
                0,
                3,
                "ac73670af3abed54ac6fb4695131f4099be9fbe39d6076c5d0264a6bbdae9d83",
            ),
            (
                1,
                3,
                "eeccaa0772d0ef89a09a3cc12d227b33bb0edcda42ae5919503bda7495cc7ddd",
            ),
            (
                BLOCK,
                6,
                "66b476f7eee4715c9e8ca355a4fdc8cb7834b90690a447cd1a2fda02b6954329",
            ),
            (
                5 * BLOCK + 777,
                3,
                "c2162d39826ee1ffb9e823dedc5fcbe5c404c217be16c98e8e43d57554d514f9",
            ),
            (
                5 * BLOCK + 777,
                9,
                "8f85566fae9860229c6f6ffb71d79c4d6168289dd7894ce577b04ee73283af8d",
            ),
        ];
        for (len, level, digest) in pinned {
            let out = gzip(&sample(len), level, 3, 65536);
            assert_eq!(
                super::super::Digest::of(&out).hex(),
                digest,
                "{len} at {level}"
            );
        }
    }

    #[test]
    fn a_cancelled_stream_stops_with_the_cancel_error() {
        let cancel = Cancel::new();
        let mut w = ParallelGzip::with_threads(Vec::new(), 1, 2).with_cancel(cancel.clone());
        w.write_all(&sample(3 * BLOCK)).unwrap();
        cancel.cancel();
        let err = w.write_all(&sample(BLOCK)).unwrap_err();
        assert!(super::super::cancel::is_cancelled(&err), "{err}");
    }
}
