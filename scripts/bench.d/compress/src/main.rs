//! Compresses stdin to stdout with one of the compressors measured by
//! `scripts/bench.d/compress.sh`: `ours-gzip LEVEL`, `gzp LEVEL`, `ours-zstd LEVEL`, on
//! THREADS threads (the machine's cores unless given third).

use std::io::{self, Read, Write};

// conda-docker's own modules, as they are in the tree.
#[path = "../../../../src/image/cancel.rs"]
#[allow(dead_code)]
mod cancel;
#[path = "../../../../src/image/gzip.rs"]
#[allow(dead_code)]
mod gzip;

/// As `src/image/compress.rs` sets it.
const ZSTD_JOB: u32 = 8 << 20;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        || io::Error::other("usage: compress-bench ours-gzip|gzp|ours-zstd LEVEL [THREADS]");
    let (Some(what), Some(level)) = (args.get(1), args.get(2)) else {
        return Err(usage());
    };
    let level: u32 = level.parse().map_err(|_| usage())?;
    let threads = match args.get(3) {
        Some(t) => t.parse().map_err(|_| usage())?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let input = io::stdin().lock();
    let out = io::BufWriter::with_capacity(1 << 20, io::stdout());
    match what.as_str() {
        "ours-gzip" => {
            let mut w = gzip::ParallelGzip::with_threads(out, level, threads);
            pump(input, &mut w)?;
            w.finish()?.flush()
        }
        "gzp" => {
            use gzp::ZWriter;
            let mut w = gzp::par::compress::ParCompressBuilder::<gzp::deflate::Gzip>::new()
                .num_threads(threads)
                .map_err(io::Error::other)?
                .compression_level(flate2::Compression::new(level))
                .from_writer(out);
            pump(input, &mut w)?;
            w.finish().map_err(io::Error::other)?.flush()
        }
        "ours-zstd" => {
            let mut w = zstd::stream::write::Encoder::new(out, level as i32)?;
            w.multithread(threads as u32)?;
            w.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB))?;
            pump(input, &mut w)?;
            w.finish()?.flush()
        }
        _ => Err(usage()),
    }
}

/// Copies `input` to `out` in 1 MiB writes, as a tar writer hands a layer over.
fn pump(mut input: impl Read, out: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}
