//! Writes the small glibc + busybox base image used by the README demo and the tests.
//!
//! `cargo run --example glibc_base -- demo/base.tar` (needs busybox-static on the host).

#[allow(dead_code)]
#[path = "../tests/common/base.rs"]
mod base;

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "base.tar".into());
    if let Err(e) = base::write_glibc_base(std::path::Path::new(&out), "glibc-base:demo") {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {out}");
}
