//! The one way a small document (JSON above all) is read from an input: with a cap, so a huge
//! `index.json`, manifest, config, `manifest.json` or package metadata file is refused with a
//! clear error instead of filling memory. Text documents a user names (environment files,
//! lockfiles, requirements files) are also refused when nested deeper than [`DEPTH_CAP`], in
//! one linear pass before any parser sees them ([`read_document`]): YAML parsers take time
//! quadratic in the depth (200,000 nested `[` in a pixi.lock: over 90 s).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most bytes a JSON document read from an input may have: 64 MiB.
pub const JSON_CAP: u64 = 64 << 20;

/// The most bytes an environment file, a lockfile or a requirements file may have: 16 MiB.
/// The largest real ones are a few MB (pixi.lock files of big multi-platform projects, with
/// many environments); this is several times that.
pub const DOCUMENT_CAP: u64 = 16 << 20;

/// The deepest an input document may nest (YAML blocks and flows, JSON arrays and objects):
/// 128 levels, serde_json's own limit. Real environment files and lockfiles nest 3 to 7.
pub const DEPTH_CAP: usize = 128;

/// A document nested deeper than [`DEPTH_CAP`].
#[derive(Debug, thiserror::Error)]
#[error("nests more than {cap} levels deep (at line {line}), the most it may")]
pub struct TooDeep {
    /// The cap.
    pub cap: usize,
    /// The line where the nesting passed it.
    pub line: usize,
}

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

/// The text document at `path` (an environment file, a lockfile, a requirements file): at
/// most [`DOCUMENT_CAP`] bytes of UTF-8, nested at most [`DEPTH_CAP`] levels ([`TooLarge`]
/// and [`TooDeep`] refusals, as [`io::ErrorKind::InvalidData`]), checked before it is parsed.
pub fn read_document(path: &Path) -> io::Result<String> {
    let bytes = read_file(path, DOCUMENT_CAP)?;
    check_depth(&bytes, DEPTH_CAP).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Refuses `text` (YAML or JSON) when it nests deeper than `cap`: block levels (indentation,
/// and compact `- - ` sequences) plus flow levels (`[`, `{` outside quoted scalars and
/// comments), counted in one pass. It over-counts rather than under-counts (a block scalar's
/// indentation counts too), so what it lets through a parser meets no deeper nesting.
pub fn check_depth(text: &[u8], cap: usize) -> Result<(), TooDeep> {
    let mut depth = Depth::default();
    let mut i = 0;
    while i < text.len() {
        if depth.line_start && depth.flow == 0 {
            i = depth.indent(text, i);
        } else {
            i = depth.step(text, i);
        }
        if depth.blocks.len() + depth.compact + depth.flow > cap {
            return Err(TooDeep {
                cap,
                line: depth.line,
            });
        }
    }
    Ok(())
}

/// Where [`check_depth`] is.
struct Depth {
    /// The indentation of each open block.
    blocks: Vec<usize>,
    /// Compact sequences (`- - x`) opened on this line.
    compact: usize,
    /// Open flow collections.
    flow: usize,
    line: usize,
    line_start: bool,
    /// The byte before this one, a space for any whitespace.
    prev: u8,
}

impl Default for Depth {
    fn default() -> Self {
        Self {
            blocks: Vec::new(),
            compact: 0,
            flow: 0,
            line: 1,
            line_start: true,
            prev: b' ',
        }
    }
}

impl Depth {
    /// At a line's start outside any flow: its indentation closes and opens blocks, and each
    /// `- ` that starts it opens one more. Returns where the line's content starts.
    fn indent(&mut self, text: &[u8], start: usize) -> usize {
        self.line_start = false;
        self.compact = 0;
        let mut i = start;
        while text.get(i) == Some(&b' ') {
            i += 1;
        }
        if matches!(text.get(i), None | Some(b'\n' | b'\r' | b'#')) {
            return i;
        }
        let indent = i - start;
        while self.blocks.last().is_some_and(|&open| open >= indent) {
            self.blocks.pop();
        }
        self.blocks.push(indent);
        while text.get(i) == Some(&b'-') && text.get(i + 1) == Some(&b' ') {
            self.compact += 1;
            i += 2;
            while text.get(i) == Some(&b' ') {
                i += 1;
            }
        }
        self.prev = b' ';
        i
    }

    /// One byte (or a whole quoted scalar, or a comment) of a line; returns where the next is.
    fn step(&mut self, text: &[u8], i: usize) -> usize {
        let b = text[i];
        let starts_scalar = matches!(self.prev, b' ' | b'[' | b'{' | b',' | b':');
        let next = match b {
            b'\n' => {
                self.line += 1;
                // Inside a flow, indentation means nothing.
                self.line_start = self.flow == 0;
                i + 1
            }
            b'"' | b'\'' if starts_scalar => self.quoted(text, i),
            b'#' if self.prev == b' ' => {
                let end = text[i..].iter().position(|&c| c == b'\n');
                end.map_or(text.len(), |e| i + e)
            }
            b'[' | b'{' => {
                self.flow += 1;
                i + 1
            }
            b']' | b'}' => {
                self.flow = self.flow.saturating_sub(1);
                i + 1
            }
            _ => i + 1,
        };
        self.prev = if b.is_ascii_whitespace() { b' ' } else { b };
        next
    }

    /// Past the quoted scalar opening at `i` (`"` with `\` escapes, `'` with `''`), counting
    /// its lines.
    fn quoted(&mut self, text: &[u8], i: usize) -> usize {
        let quote = text[i];
        let mut j = i + 1;
        while j < text.len() {
            match text[j] {
                b'\\' if quote == b'"' => j += 1,
                b'\n' => self.line += 1,
                c if c == quote => {
                    if quote == b'\'' && text.get(j + 1) == Some(&b'\'') {
                        j += 1;
                    } else {
                        return j + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        j
    }
}

/// True when `e` is a [`TooDeep`] refusal.
pub fn is_too_deep(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooDeep>())
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

    #[test]
    fn nesting_deeper_than_the_cap_is_refused_in_one_pass() {
        let ok = |t: &str| check_depth(t.as_bytes(), 5).is_ok();
        assert!(ok("a:\n  b:\n    c: [1, {d: 2}]\n"));
        assert!(ok("a: [\n        1,\n  2]\nb:\n  - c\n"));
        assert!(ok("a: \"[[[[[[\" # [[[[[[\nb: 'it''s [[[['\nc: don't\n"));
        assert!(!ok("a:\n b:\n  c:\n   d:\n    e:\n     f: 1\n"), "blocks");
        assert!(!ok("- - - - - x\n"), "compact sequences");
        assert!(!ok("a: [[[[[1]]]]]\n"), "flows");
        // A quote inside a plain scalar opens no string that would hide brackets.
        assert!(!ok("a: don't\nb: [[[[[1]]]]] # '\n"));
        let deep = "[".repeat(200_000) + &"]".repeat(200_000);
        let err = check_depth(deep.as_bytes(), DEPTH_CAP).unwrap_err();
        assert_eq!((err.cap, err.line), (128, 1));
        assert!(err.to_string().contains("128 levels"), "{err}");
        let lines: String = (0..200)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(check_depth(lines.as_bytes(), DEPTH_CAP).is_err());
    }
}
