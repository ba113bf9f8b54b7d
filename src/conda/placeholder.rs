//! Prefix replacement: rewriting a package's build prefix placeholder for the image's prefix.
//!
//! A conda package lists in `info/paths.json` the files that contain the prefix it was built in
//! (`prefix_placeholder`) and how to patch them (`file_mode`):
//!
//! - `text` ([`replace_text`]): every occurrence becomes the target prefix, so the file's length
//!   changes. A first line `#!interpreter args` that the replacement leaves longer than the
//!   kernel accepts, or whose interpreter directory holds a space, is rewritten the way conda's
//!   `replace_long_shebang` does (see [`replace_text`]).
//! - `binary` ([`BinaryReplacer`]): the file's length must not change, so each NUL-terminated
//!   string holding the placeholder is rewritten in place and padded with NULs, as conda's
//!   `binary_replace` does. The target prefix must therefore not be longer than the placeholder.
//!
//! Only the UTF-8 spelling of the placeholder is replaced (conda also tries UTF-16 and UTF-32,
//! which no conda-forge Linux package needs).

use std::io::{self, Read};

/// Why a file could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum PlaceholderError {
    /// The target prefix is longer than the binary placeholder, so it cannot be NUL-padded in place.
    #[error(
        "the target prefix `{target}` ({target_len} bytes) is longer than the package's binary placeholder ({placeholder_len} bytes): choose a shorter --target-prefix"
    )]
    TargetTooLong {
        /// The target prefix (lossily decoded).
        target: String,
        /// The target prefix's length in bytes.
        target_len: usize,
        /// The placeholder's length in bytes.
        placeholder_len: usize,
    },
    /// A C string holding the placeholder runs on for more than MAX_CSTRING bytes without a NUL.
    #[error("a string holding the placeholder has no terminating NUL within {0} bytes")]
    Unterminated(usize),
}

impl From<PlaceholderError> for io::Error {
    fn from(error: PlaceholderError) -> Self {
        io::Error::other(error)
    }
}

/// The longest first line, `#!` included and the newline excluded, that Linux executes
/// (`BINPRM_BUF_SIZE` is 128 bytes with the newline; conda uses the same limit).
const MAX_SHEBANG: usize = 127;

/// Text mode: every occurrence of `placeholder` becomes `target`; then a first-line shebang
/// longer than the kernel's limit (127 bytes) or with a space in its interpreter's directory is
/// rewritten, as conda does.
///
/// In detail, matching conda's `replace_prefix` and `replace_long_shebang`:
///
/// - Occurrences are replaced left to right, without overlap, in the whole file.
/// - When the file starts with `#!` and the first line holds `#!<placeholder>`, the spaces of
///   the target are escaped (`\ `) there, so that the rule below sees them.
/// - The first line is then parsed as `#!`, optional spaces, an interpreter starting with `/`
///   (up to an unescaped space, tab or CR) and its arguments. If the line is longer than 127
///   bytes or the interpreter's directory holds an escaped space, it is rewritten:
///   - for a Python interpreter (`python`, `python3`, `python3.12`, ...) to the `#!/bin/sh`
///     trampoline `'''exec' "<interpreter>" <args> "$0" "$@" #'''` (as rattler does; the line is
///     a string literal to Python and an `exec` to sh, so no `PATH` lookup is needed);
///   - for any other interpreter to `#!/usr/bin/env <name> <args>` (as conda does for all; the
///     trampoline would re-execute itself forever under sh or bash), which finds the
///     interpreter on `PATH`.
///
/// When `placeholder` equals `target` (or is empty) the content is returned unchanged: it is
/// already correct for that prefix.
pub fn replace_text(content: &[u8], placeholder: &[u8], target: &[u8]) -> Vec<u8> {
    if placeholder.is_empty() || placeholder == target {
        return content.to_vec();
    }
    if !content.starts_with(b"#!") {
        return replace_all(content, placeholder, target);
    }
    let line_end = content
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(content.len());
    let (first_line, rest) = content.split_at(line_end);

    // conda: `#!<placeholder>` becomes `#!<target with escaped spaces>`, the rest plainly.
    let escaped_target = replace_all(target, b" ", b"\\ ");
    let first_line = replace_all(
        first_line,
        &[b"#!", placeholder].concat(),
        &[b"#!", escaped_target.as_slice()].concat(),
    );
    let first_line = replace_all(&first_line, placeholder, target);

    let mut out = rewrite_shebang(&first_line).unwrap_or(first_line);
    out.extend_from_slice(&replace_all(rest, placeholder, target));
    out
}

/// Rewrites a first line (without its newline) that the kernel cannot run, or returns `None`
/// when it can (or is not a `#!/interpreter` line).
fn rewrite_shebang(line: &[u8]) -> Option<Vec<u8>> {
    let after_bang = line.strip_prefix(b"#!")?;
    let spaces = after_bang.iter().take_while(|&&b| b == b' ').count();
    let exe_start = 2 + spaces;
    if line.get(exe_start) != Some(&b'/') {
        return None;
    }
    // The interpreter runs to the first space, tab or CR not escaped by a backslash (conda's
    // `(/(?:\\ |[^ \n\r\t])*)`).
    let mut exe_end = exe_start;
    while exe_end < line.len() {
        if line[exe_end..].starts_with(b"\\ ") {
            exe_end += 2;
        } else if matches!(line[exe_end], b' ' | b'\t' | b'\r' | b'\n') {
            break;
        } else {
            exe_end += 1;
        }
    }
    let interpreter = &line[exe_start..exe_end];
    let args = &line[exe_end..];
    let slash = interpreter.iter().rposition(|&b| b == b'/')?;
    let (dir, name) = (&interpreter[..slash], &interpreter[slash + 1..]);

    if line.len() <= MAX_SHEBANG && find(dir, b"\\ ").is_none() {
        return None;
    }

    let mut out = Vec::with_capacity(line.len() + 48);
    if is_python(name) {
        out.extend_from_slice(b"#!/bin/sh\n'''exec' \"");
        for &b in replace_all(interpreter, b"\\ ", b" ").iter() {
            if matches!(b, b'"' | b'\\' | b'$' | b'`') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out.extend_from_slice(args);
        out.extend_from_slice(b" \"$0\" \"$@\" #'''");
    } else {
        out.extend_from_slice(b"#!/usr/bin/env ");
        out.extend_from_slice(name);
        out.extend_from_slice(args);
    }
    Some(out)
}

/// Whether an interpreter's file name is `python`, optionally followed by a version such as
/// `3`, `3.12` or `312` (rattler's `^python(?:\d+(?:\.\d+)?)?$`).
fn is_python(name: &[u8]) -> bool {
    let Some(version) = name.strip_prefix(b"python") else {
        return false;
    };
    if version.is_empty() {
        return true;
    }
    let (major, minor) = match version.iter().position(|&b| b == b'.') {
        Some(dot) => (&version[..dot], Some(&version[dot + 1..])),
        None => (version, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    digits(major) && minor.is_none_or(digits)
}

/// `haystack` with every occurrence of the non-empty `needle`, left to right and without
/// overlap, replaced by `with`.
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The position of the first occurrence of `needle` in `haystack`; `None` for an empty needle.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|&b| b == first) {
        let at = from + offset;
        if haystack.len() - at < needle.len() {
            return None;
        }
        if haystack[at + 1..].starts_with(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The largest C string (bytes from a placeholder to its NUL) the binary replacer accepts.
pub const MAX_CSTRING: usize = 1 << 20;

/// How much [`BinaryReplacer`] reads from its inner reader at a time.
const CHUNK: usize = 64 * 1024;

/// Binary mode: a reader yielding `inner`'s bytes with every NUL-terminated string that holds
/// `placeholder` rewritten: each occurrence of the placeholder in that string replaced by
/// `target`, the rest of the string kept, and NUL bytes appended so the string keeps its length.
///
/// As in conda's `binary_replace`, a string is taken from an occurrence of the placeholder (the
/// bytes before it, such as `-Wl,-rpath,` or `OPENSSLDIR: "`, are kept as they are) to the next
/// NUL; the search resumes after that NUL. A string that reaches the end of the input without a
/// NUL is patched too, padded to the end (conda leaves it alone).
///
/// The output has exactly the input's length. The reader streams with bounded memory: it buffers
/// a chunk of 64 KiB plus, while the NUL ending a string holding the placeholder is not yet read,
/// that string, which may be at most [`MAX_CSTRING`] bytes long; a longer one fails the read with
/// an [`io::Error`] wrapping [`PlaceholderError::Unterminated`] (recover it with
/// [`io::Error::downcast`]).
pub struct BinaryReplacer<R> {
    /// Where the unpatched bytes come from.
    inner: R,
    /// What to replace.
    placeholder: Vec<u8>,
    /// What to replace it with, no longer than `placeholder`.
    target: Vec<u8>,
    /// `buf[pos..ready]` is patched output not yet returned; `buf[ready..]` is input not yet
    /// patched, which starts with a placeholder whenever `pending` is set.
    buf: Vec<u8>,
    /// The first byte of `buf` not yet returned.
    pos: usize,
    /// The end of the patched bytes in `buf`.
    ready: usize,
    /// While a string holding the placeholder awaits its NUL: how many bytes after the
    /// placeholder that starts it are known to hold no NUL.
    pending: Option<usize>,
    /// Whether `inner` reported the end of its input.
    eof: bool,
    /// Whether a string ran on too long; every later read fails.
    failed: bool,
}

impl<R: Read> BinaryReplacer<R> {
    /// Wraps `inner`; fails with TargetTooLong when `target` is longer than `placeholder`.
    pub fn new(inner: R, placeholder: &[u8], target: &[u8]) -> Result<Self, PlaceholderError> {
        if target.len() > placeholder.len() {
            return Err(PlaceholderError::TargetTooLong {
                target: String::from_utf8_lossy(target).into_owned(),
                target_len: target.len(),
                placeholder_len: placeholder.len(),
            });
        }
        Ok(Self {
            inner,
            placeholder: placeholder.to_vec(),
            target: target.to_vec(),
            buf: Vec::new(),
            pos: 0,
            ready: 0,
            pending: None,
            eof: false,
            failed: false,
        })
    }

    /// Patches as much of `buf[ready..]` as can be decided without reading more.
    fn patch_available(&mut self) -> Result<(), PlaceholderError> {
        let plen = self.placeholder.len();
        if plen == 0 {
            self.ready = self.buf.len();
            return Ok(());
        }
        loop {
            let start = match self.pending {
                Some(_) => self.ready,
                None => match find(&self.buf[self.ready..], &self.placeholder) {
                    Some(offset) => {
                        self.ready += offset;
                        self.pending = Some(0);
                        self.ready
                    }
                    None => {
                        // A placeholder may begin in the last `plen - 1` bytes and end in the
                        // next chunk; everything before them is final.
                        let undecided = if self.eof { 0 } else { plen - 1 };
                        self.ready = self.ready.max(self.buf.len().saturating_sub(undecided));
                        return Ok(());
                    }
                },
            };
            let checked = self.pending.unwrap_or(0);
            let search_from = start + plen + checked;
            let nul = self.buf[search_from..].iter().position(|&b| b == 0);
            let end = match nul {
                Some(offset) => search_from + offset,
                None if self.buf.len() - start > MAX_CSTRING => {
                    return Err(PlaceholderError::Unterminated(MAX_CSTRING));
                }
                None if self.eof => self.buf.len(),
                None => {
                    self.pending = Some(self.buf.len() - start - plen);
                    return Ok(());
                }
            };
            if end - start > MAX_CSTRING {
                return Err(PlaceholderError::Unterminated(MAX_CSTRING));
            }
            self.patch_string(start, end);
            self.pending = None;
            // The NUL (if any) needs no patching.
            self.ready = (end + 1).min(self.buf.len());
        }
    }

    /// Rewrites the string `buf[start..end]` in place: every placeholder becomes the target and
    /// the bytes freed at the end become NULs.
    fn patch_string(&mut self, start: usize, end: usize) {
        let (plen, tlen) = (self.placeholder.len(), self.target.len());
        let (mut read, mut write) = (start, start);
        while let Some(offset) = find(&self.buf[read..end], &self.placeholder) {
            self.buf.copy_within(read..read + offset, write);
            write += offset;
            self.buf[write..write + tlen].copy_from_slice(&self.target);
            write += tlen;
            read += offset + plen;
        }
        self.buf.copy_within(read..end, write);
        write += end - read;
        self.buf[write..end].fill(0);
    }

    /// Drops the returned bytes and reads up to a chunk more (or to the end of the input).
    fn fill(&mut self) -> io::Result<()> {
        self.buf.drain(..self.pos);
        self.ready -= self.pos;
        self.pos = 0;
        let mut filled = self.buf.len();
        self.buf.resize(filled + CHUNK, 0);
        let result = loop {
            if filled == self.buf.len() {
                break Ok(());
            }
            match self.inner.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break Ok(());
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.truncate(filled);
        result
    }
}

impl<R: Read> Read for BinaryReplacer<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.ready {
            if self.failed {
                return Err(PlaceholderError::Unterminated(MAX_CSTRING).into());
            }
            if self.eof && self.ready == self.buf.len() {
                return Ok(0);
            }
            if !self.eof {
                self.fill()?;
            }
            if let Err(e) = self.patch_available() {
                self.failed = true;
                return Err(e.into());
            }
        }
        let n = out.len().min(self.ready - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A reader returning 1 to 7 bytes per call, varying pseudo-randomly.
    struct Dribble<'a> {
        data: &'a [u8],
        state: u64,
    }

    impl<'a> Dribble<'a> {
        fn new(data: &'a [u8], seed: u64) -> Self {
            Self {
                data,
                state: seed.wrapping_mul(6364136223846793005).wrapping_add(1),
            }
        }
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let want = 1 + (self.state >> 33) as usize % 7;
            let n = want.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn binary(data: &[u8], placeholder: &[u8], target: &[u8], seed: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        BinaryReplacer::new(Dribble::new(data, seed), placeholder, target)
            .unwrap()
            .read_to_end(&mut out)?;
        Ok(out)
    }

    /// conda's `binary_replace` written plainly over a whole buffer (also patching a string
    /// that runs to the end, as `BinaryReplacer` does).
    fn reference(data: &[u8], placeholder: &[u8], target: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut i = 0;
        while i < data.len() {
            if data[i..].starts_with(placeholder) {
                let after = i + placeholder.len();
                let end = data[after..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(data.len(), |k| after + k);
                let patched = replace_all(&data[i..end], placeholder, target);
                out.extend_from_slice(&patched);
                out.resize(out.len() + (end - i - patched.len()), 0);
                i = end;
            } else {
                out.push(data[i]);
                i += 1;
            }
        }
        out
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        let mut n = 0;
        let mut rest = haystack;
        while let Some(at) = find(rest, needle) {
            n += 1;
            rest = &rest[at + needle.len()..];
        }
        n
    }

    /// The NUL-terminated string containing position `at`.
    fn cstring_at(data: &[u8], at: usize) -> &[u8] {
        let start = data[..at]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |p| p + 1);
        let end = data[at..]
            .iter()
            .position(|&b| b == 0)
            .map_or(data.len(), |p| at + p);
        &data[start..end]
    }

    #[test]
    fn binary_patches_strings_split_across_reads() {
        let ph = b"/build/_placehold_placehold";
        let mut data = Vec::new();
        data.extend_from_slice(b"\x7fELF\0\0");
        data.extend_from_slice(b"-Wl,-rpath,/build/_placehold_placehold/lib\0");
        data.extend_from_slice(b"no placeholder /build/_place here\0");
        data.extend_from_slice(b"/build/_placehold_placehold/a:/build/_placehold_placehold/b\0");
        data.extend_from_slice(b"/build/_placehold_placehold\0\0\0");
        data.extend_from_slice(b"tail /build/_placehold_placehold/x");
        for seed in 0..64 {
            let out = binary(&data, ph, b"/opt/conda", seed).unwrap();
            assert_eq!(out.len(), data.len());
            assert_eq!(out, reference(&data, ph, b"/opt/conda"));
            assert_eq!(count(&out, ph), 0);
        }
        let out = binary(&data, ph, b"/opt/conda", 0).unwrap();
        let at = |s: &[u8]| find(&out, s).unwrap();
        // The text before the placeholder is kept; padding follows the string.
        let rpath = at(b"-Wl,-rpath,");
        assert_eq!(cstring_at(&out, rpath), b"-Wl,-rpath,/opt/conda/lib");
        assert!(out[rpath..].starts_with(b"-Wl,-rpath,/opt/conda/lib\0\0"));
        // Strings without the placeholder are untouched, byte for byte.
        let untouched = at(b"no placeholder");
        assert_eq!(
            cstring_at(&out, untouched),
            b"no placeholder /build/_place here"
        );
        // Every placeholder of one string is replaced, the padding covering both.
        let two = at(b"/opt/conda/a");
        assert_eq!(cstring_at(&out, two), b"/opt/conda/a:/opt/conda/b");
        let padding = 2 * (ph.len() - b"/opt/conda".len());
        let end_of_two = two + b"/opt/conda/a:/opt/conda/b".len();
        assert!(
            out[end_of_two..end_of_two + padding + 1]
                .iter()
                .all(|&b| b == 0)
        );
        // A string running to the end of the input is patched and padded to the end.
        let mut tail = b"tail /opt/conda/x".to_vec();
        tail.resize(tail.len() + ph.len() - b"/opt/conda".len(), 0);
        assert!(out.ends_with(&tail));
    }

    #[test]
    fn binary_matches_reference_on_random_inputs() {
        let ph = b"/p_ph";
        let pieces: [&[u8]; 8] = [b"/p_ph", b"/p_", b"/", b"x", b"\0", b"ph", b"/p_p", b"yz"];
        let mut state = 7u64;
        for case in 0..400 {
            let mut data = Vec::new();
            for _ in 0..(case % 60) {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                data.extend_from_slice(pieces[(state >> 35) as usize % pieces.len()]);
            }
            for target in [&b""[..], b"/t", b"/p_ph", b"/abc"] {
                let out = binary(&data, ph, target, case).unwrap();
                assert_eq!(out, reference(&data, ph, target), "case {case}");
                assert_eq!(out.len(), data.len());
            }
        }
    }

    #[test]
    fn binary_streams_large_inputs_with_big_reads() {
        // Several chunks, with placeholders straddling chunk boundaries.
        let ph = b"/placeholder/prefix/of/the/build";
        let mut data = Vec::new();
        let mut i = 0u32;
        while data.len() < 5 * CHUNK {
            data.extend_from_slice(format!("filler {i} ").as_bytes());
            if i.is_multiple_of(97) {
                data.extend_from_slice(ph);
                data.extend_from_slice(b"/lib\0");
            }
            i += 1;
        }
        let mut out = Vec::new();
        BinaryReplacer::new(&data[..], ph, b"/opt/conda")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, reference(&data, ph, b"/opt/conda"));
        assert_eq!(count(&out, ph), 0);
    }

    #[test]
    fn binary_rejects_a_longer_target() {
        let err = BinaryReplacer::new(&b""[..], b"/short", b"/much/longer")
            .err()
            .unwrap();
        match &err {
            PlaceholderError::TargetTooLong {
                target,
                target_len,
                placeholder_len,
            } => {
                assert_eq!(target, "/much/longer");
                assert_eq!((*target_len, *placeholder_len), (12, 6));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("--target-prefix"));
        // An equal length is fine.
        assert!(BinaryReplacer::new(&b""[..], b"/abc", b"/xyz").is_ok());
    }

    #[test]
    fn binary_rejects_an_unterminated_string() {
        let ph = b"/placeholder";
        let mut data = b"head\0".to_vec();
        data.extend_from_slice(ph);
        data.resize(data.len() + MAX_CSTRING, b'a');
        data.extend_from_slice(b"\0rest");
        let mut replacer = BinaryReplacer::new(&data[..], ph, b"/opt").unwrap();
        let mut out = Vec::new();
        let err = replacer.read_to_end(&mut out).unwrap_err();
        // The bytes before the string were returned first.
        assert_eq!(out, b"head\0");
        let err = err.downcast::<PlaceholderError>().unwrap();
        assert!(matches!(err, PlaceholderError::Unterminated(MAX_CSTRING)));
        // Later reads keep failing.
        assert!(replacer.read(&mut [0; 8]).is_err());

        // Without a NUL up to the end of the input, too.
        let mut data = ph.to_vec();
        data.resize(MAX_CSTRING + 1, b'a');
        assert!(binary(&data, ph, b"/opt", 1).is_err());

        // Exactly MAX_CSTRING bytes is accepted.
        let mut data = ph.to_vec();
        data.resize(MAX_CSTRING, b'a');
        data.push(0);
        let mut out = Vec::new();
        BinaryReplacer::new(&data[..], ph, b"/opt")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), data.len());
        assert!(out.starts_with(b"/optaaa"));
    }

    #[test]
    fn binary_with_empty_placeholder_passes_through() {
        let data = b"abc\0def";
        let out = binary(data, b"", b"", 3).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn text_replaces_every_occurrence() {
        let out = replace_text(b"a=/ph/x\nb=/ph/y:/ph/z\n", b"/ph", b"/opt/conda");
        assert_eq!(out, b"a=/opt/conda/x\nb=/opt/conda/y:/opt/conda/z\n");
        // `#!` not at the start is no shebang.
        let out = replace_text(b"x\n#!/ph/bin/python\n", b"/ph", b"/a b");
        assert_eq!(out, b"x\n#!/a b/bin/python\n");
        // Nothing to replace.
        assert_eq!(replace_text(b"plain\n", b"/ph", b"/opt"), b"plain\n");
        assert_eq!(replace_text(b"", b"/ph", b"/opt"), b"");
    }

    #[test]
    fn text_with_the_same_prefix_is_unchanged() {
        let ph = format!("/build/{}", "_placehold".repeat(20));
        let content = format!("#!{ph}/bin/python3 -E\nprint('{ph}')\n");
        assert_eq!(
            replace_text(content.as_bytes(), ph.as_bytes(), ph.as_bytes()),
            content.as_bytes()
        );
    }

    #[test]
    fn text_keeps_a_short_shebang() {
        let ph = format!("/build/{}", "_placehold".repeat(20));
        let content = format!("#!{ph}/bin/python3.12 -s\nimport sys\n");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), b"/opt/conda");
        assert_eq!(out, b"#!/opt/conda/bin/python3.12 -s\nimport sys\n");
        // `#!/bin/sh` holds no placeholder and stays.
        let out = replace_text(b"#!/bin/sh\necho /ph\n", b"/ph", b"/opt/conda");
        assert_eq!(out, b"#!/bin/sh\necho /opt/conda\n");
    }

    #[test]
    fn text_rewrites_a_long_python_shebang_to_a_trampoline() {
        let ph = "/build/_placehold_placehold";
        let target = format!("/opt/{}", "x".repeat(130));
        let content = format!("#!{ph}/bin/python3.12 -E -s\nprint('{ph}')\n");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), target.as_bytes());
        let expected = format!(
            "#!/bin/sh\n'''exec' \"{target}/bin/python3.12\" -E -s \"$0\" \"$@\" #'''\nprint('{target}')\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        // Without a newline too.
        let content = format!("#!{ph}/bin/python");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), target.as_bytes());
        let expected = format!("#!/bin/sh\n'''exec' \"{target}/bin/python\" \"$0\" \"$@\" #'''");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn text_rewrites_a_long_other_shebang_to_env() {
        let ph = "/build/_placehold_placehold";
        let target = format!("/opt/{}", "y".repeat(130));
        let content = format!("#!{ph}/bin/perl -w\nuse lib '{ph}/lib';\n");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), target.as_bytes());
        let expected = format!("#!/usr/bin/env perl -w\nuse lib '{target}/lib';\n");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        // 127 bytes is still fine, 128 is not.
        let target = "/o".repeat(60); // "#!" + 120 + "/bin/sh" = 129
        let content = format!("#!{ph}/bin/sh\n");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), target.as_bytes());
        assert_eq!(out, b"#!/usr/bin/env sh\n");
        let target = "/o".repeat(59); // 2 + 118 + 7 = 127
        let out = replace_text(content.as_bytes(), ph.as_bytes(), target.as_bytes());
        assert_eq!(out, format!("#!{target}/bin/sh\n").as_bytes());
    }

    #[test]
    fn text_rewrites_a_shebang_with_a_space() {
        let ph = b"/build/_placehold";
        let out = replace_text(
            b"#!/build/_placehold/bin/python -u\nx = '/build/_placehold'\n",
            ph,
            b"/opt/my conda",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#!/bin/sh\n'''exec' \"/opt/my conda/bin/python\" -u \"$0\" \"$@\" #'''\nx = '/opt/my conda'\n"
        );
        let out = replace_text(b"#!/build/_placehold/bin/bash\necho hi\n", ph, b"/opt/a b");
        assert_eq!(out, b"#!/usr/bin/env bash\necho hi\n");
        // Shell metacharacters in the interpreter's path are escaped in the trampoline.
        let out = replace_text(b"#!/build/_placehold/bin/python3\n", ph, b"/o p/$x\"");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "#!/bin/sh\n'''exec' \"/o p/\\$x\\\"/bin/python3\" \"$0\" \"$@\" #'''\n"
        );
    }

    #[test]
    fn python_names() {
        for name in ["python", "python3", "python3.12", "python312"] {
            assert!(is_python(name.as_bytes()), "{name}");
        }
        for name in [
            "python3.",
            "python3.1.2",
            "pythonw",
            "ipython",
            "python-config",
        ] {
            assert!(!is_python(name.as_bytes()), "{name}");
        }
    }

    // --- Real conda-forge packages from the vendored demo channel. ---

    /// The files `wanted` of a vendored `.conda` archive and its `info/paths.json`.
    fn conda_files(file: &str, wanted: &[&str]) -> (HashMap<String, Vec<u8>>, serde_json::Value) {
        let path = format!(
            "{}/demo/channel/linux-64/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let dir = tempfile::tempdir().unwrap();
        rattler_package_streaming::fs::extract(std::path::Path::new(&path), dir.path()).unwrap();
        let found = wanted
            .iter()
            .map(|w| (w.to_string(), std::fs::read(dir.path().join(w)).unwrap()))
            .collect();
        let paths =
            serde_json::from_slice(&std::fs::read(dir.path().join("info/paths.json")).unwrap())
                .unwrap();
        (found, paths)
    }

    /// The placeholder `paths.json` records for `path`, checking its file mode.
    fn placeholder_of(paths: &serde_json::Value, path: &str, mode: &str) -> String {
        let entry = paths["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["_path"] == path)
            .unwrap();
        assert_eq!(entry["file_mode"], mode, "{path}");
        entry["prefix_placeholder"].as_str().unwrap().to_owned()
    }

    const TARGET: &[u8] = b"/opt/conda";

    #[test]
    fn real_openssl_libcrypto() {
        let (files, paths) = conda_files("openssl-3.4.0-h7b32b05_1.conda", &["lib/libcrypto.so.3"]);
        let ph = placeholder_of(&paths, "lib/libcrypto.so.3", "binary");
        let ph = ph.as_bytes();
        let data = &files["lib/libcrypto.so.3"];
        let before = count(data, ph);
        assert!(before > 0);

        let out = binary(data, ph, TARGET, 42).unwrap();
        assert_eq!(out.len(), data.len());
        assert_eq!(count(&out, ph), 0);
        assert_eq!(count(&out, TARGET), before);
        assert_eq!(out, reference(data, ph, TARGET));
        // A string with text before the placeholder keeps it.
        let at = find(&out, b"OPENSSLDIR: \"").unwrap();
        assert_eq!(cstring_at(&out, at), b"OPENSSLDIR: \"/opt/conda/ssl\"");
        // The compiler flags hold several placeholders in one string.
        let at = find(&data[..], b"compiler: ").unwrap();
        let flags = cstring_at(data, at);
        assert!(count(flags, ph) > 1);
        let patched = cstring_at(&out, at);
        assert_eq!(count(patched, TARGET), count(flags, ph));
        assert_eq!(patched, replace_all(flags, ph, TARGET));
    }

    #[test]
    fn real_ncurses_terminfo_path() {
        let libs = ["lib/libtinfo.so.6.5", "lib/libtinfow.so.6.5"];
        let (files, paths) = conda_files("ncurses-6.5-h2d0b736_2.conda", &libs);
        for lib in libs {
            let ph = placeholder_of(&paths, lib, "binary");
            let ph = ph.as_bytes();
            let data = &files[lib];
            assert!(count(data, ph) > 0);
            let out = binary(data, ph, TARGET, 5).unwrap();
            assert_eq!(out.len(), data.len(), "{lib}");
            assert_eq!(count(&out, ph), 0, "{lib}");
            assert_eq!(out, reference(data, ph, TARGET));
            let at = find(&out, b"/opt/conda/share/terminfo").unwrap();
            assert_eq!(cstring_at(&out, at), b"/opt/conda/share/terminfo", "{lib}");
        }
    }

    #[test]
    fn real_ncurses_config_script() {
        let script = "bin/ncursesw6-config";
        let (files, paths) = conda_files("ncurses-6.5-h2d0b736_2.conda", &[script]);
        let ph = placeholder_of(&paths, script, "text");
        let data = &files[script];
        assert!(count(data, ph.as_bytes()) > 0);
        let out = replace_text(data, ph.as_bytes(), TARGET);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(&ph));
        assert!(out.starts_with("#!/bin/sh\n"));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"prefix=\"/opt/conda\""), "{out}");
        assert_eq!(
            out.len(),
            data.len() - count(data, ph.as_bytes()) * (ph.len() - TARGET.len())
        );
    }

    #[test]
    fn real_openssl_c_rehash_keeps_its_env_shebang() {
        let script = "bin/c_rehash";
        let (files, paths) = conda_files("openssl-3.4.0-h7b32b05_1.conda", &[script]);
        let ph = placeholder_of(&paths, script, "text");
        let data = &files[script];
        assert!(data.starts_with(b"#!/usr/bin/env perl\n"));
        let out = replace_text(data, ph.as_bytes(), TARGET);
        assert!(out.starts_with(b"#!/usr/bin/env perl\n"));
        assert_eq!(count(&out, ph.as_bytes()), 0);
        assert!(count(&out, TARGET) > 0);
    }

    #[test]
    fn real_placeholder_shebang_too_long_for_the_kernel() {
        // conda-build's placeholder is 255 bytes: a script installed at it would have an
        // unrunnable shebang; placed at a long prefix it is rewritten, at a short one kept.
        let (_, paths) = conda_files("ncurses-6.5-h2d0b736_2.conda", &[]);
        let ph = placeholder_of(&paths, "bin/ncursesw6-config", "text");
        assert_eq!(ph.len(), 255);
        let content = format!("#!{ph}/bin/python3.12\nimport os  # {ph}\n");
        let out = replace_text(content.as_bytes(), ph.as_bytes(), TARGET);
        assert_eq!(
            out,
            b"#!/opt/conda/bin/python3.12\nimport os  # /opt/conda\n"
        );
        let long = format!("/opt/{}", "deep/".repeat(30));
        let out = replace_text(content.as_bytes(), ph.as_bytes(), long.as_bytes());
        let expected = format!(
            "#!/bin/sh\n'''exec' \"{long}/bin/python3.12\" \"$0\" \"$@\" #'''\nimport os  # {long}\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
