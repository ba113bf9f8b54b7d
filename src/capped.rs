//! The one way a small document (JSON above all) is read from an input: with a cap, so a huge
//! `index.json`, manifest, config, `manifest.json` or package metadata file is refused with a
//! clear error instead of filling memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most bytes a JSON document read from an input may have: 64 MiB.
pub const JSON_CAP: u64 = 64 << 20;

/// An input larger than the cap it was read with.
#[derive(Debug, thiserror::Error)]
#[error("is larger than {}, the most it may have", human(*cap))]
pub struct TooLarge {
    /// The cap, in bytes.
    pub cap: u64,
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads all of `reader`, which holds `size` bytes when known, refusing more than `cap` bytes
/// (an [`io::ErrorKind::InvalidData`] error wrapping [`TooLarge`]); a known size over the cap
/// fails before anything is read.
pub fn read_capped(reader: impl Read, size: Option<u64>, cap: u64) -> io::Result<Vec<u8>> {
    let too_large = || io::Error::new(io::ErrorKind::InvalidData, TooLarge { cap });
    if size.is_some_and(|s| s > cap) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(size.unwrap_or(0).min(cap) as usize);
    reader.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The bytes of the file at `path`, refused when larger than `cap` (see [`read_capped`]).
pub fn read_file(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    read_open(File::open(path)?, cap)
}

/// The bytes of the open `file`, refused when larger than `cap` (see [`read_capped`]).
pub fn read_open(file: File, cap: u64) -> io::Result<Vec<u8>> {
    let size = file.metadata()?.len();
    read_capped(file, Some(size), cap)
}

/// True when `e` is a [`TooLarge`] refusal.
pub fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_the_cap_is_refused() {
        assert_eq!(read_capped(&b"12345"[..], None, 5).unwrap(), b"12345");
        let e = read_capped(&b"123456"[..], None, 5).unwrap_err();
        assert!(is_too_large(&e) && e.to_string().contains("5 bytes"), "{e}");
        // A known size over the cap fails without reading.
        let e = read_capped(io::repeat(0), Some(JSON_CAP + 1), JSON_CAP).unwrap_err();
        assert!(e.to_string().contains("64 MiB"), "{e}");
    }
}
