//! The check every layer read from an image passes through, as its bytes stream.
//!
//! [`CheckedTar`] reads a layer tar's headers with their extensions applied (PAX `x` records,
//! GNU `L`/`K` long names) both as the `tar` crate reads them (this crate's own readers) and as
//! Go's `archive/tar` does (Docker, podman, containerd), and refuses the layer when:
//! - an entry's path, or a hard link's target, is absolute or leaves the image root with `..`;
//! - a hard link's target is not an earlier entry of the same layer (Docker refuses those too);
//! - an extended header (`x`, `g`, `L`, `K`) is larger than [`EXTENDED_HEADER_CAP`], before any
//!   of it is buffered;
//! - the two readers would see different paths, link targets or entry sizes (two `path`
//!   records, a GNU long name and a PAX path that differ, data after a header-only entry, ...),
//!   since the check would then vouch for an archive other than the one extracted.
//!
//! Memory is bounded: one extended header (at most 1 MiB) and 8 bytes per entry (a keyed hash of
//! its path, to find hard links' targets).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read};

/// The most bytes an extended header (PAX `x`/`g`, GNU `L`/`K`) may hold: 1 MiB, as Go's
/// `archive/tar` allows.
pub const EXTENDED_HEADER_CAP: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Why a layer tar is refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// An entry's path is absolute or climbs out of the image root.
    #[error("entry `{path}` is an absolute path or leaves the image root with `..`")]
    Escapes {
        /// The entry's path, as the extensions make it.
        path: String,
    },
    /// A hard link's target is absolute or climbs out of the image root.
    #[error(
        "hard link `{path}` points to `{target}`, an absolute path or one that leaves the image \
         root with `..`"
    )]
    LinkEscapes {
        /// The hard link.
        path: String,
        /// Its target.
        target: String,
    },
    /// A hard link's target is not an earlier entry of the same layer.
    #[error(
        "hard link `{path}` points to `{target}`, which is not an earlier entry of this layer \
         (Docker refuses it too: `link /{target} /{path}: no such file or directory`)"
    )]
    MissingLinkTarget {
        /// The hard link.
        path: String,
        /// Its target.
        target: String,
    },
    /// An extended header is larger than [`EXTENDED_HEADER_CAP`].
    #[error(
        "the extended header ({kind}) at byte {offset} is too large: {size} bytes, more than the \
         1 MiB allowed"
    )]
    ExtendedHeaderTooLarge {
        /// `PAX x`, `PAX g`, `GNU long name` or `GNU long link`.
        kind: &'static str,
        /// Where its header starts in the tar.
        offset: u64,
        /// The size its header gives.
        size: u64,
    },
    /// A header is malformed, or readers would read it differently.
    #[error("malformed tar header at byte {offset}: {reason}")]
    Malformed {
        /// Where the header starts in the tar.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<EntryError> for io::Error {
    fn from(e: EntryError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

fn malformed(offset: u64, reason: impl Into<String>) -> EntryError {
    EntryError::Malformed {
        offset,
        reason: reason.into(),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The values of one PAX header that decide an entry's path, link and size.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    sparse_name: Option<Vec<u8>>,
}

/// What the extension headers before an entry set.
#[derive(Debug, Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }
}

/// An extended header's data being collected.
struct Collect {
    kind: u8,
    data: Vec<u8>,
    remaining: u64,
    padding: u64,
    offset: u64,
}

/// A reader over a layer tar that fails, before passing the bytes on, when the tar holds an
/// entry that is unsafe or that readers would disagree on (see the [module](self) docs). Bytes
/// pass through unchanged.
pub struct CheckedTar<R> {
    inner: R,
    block: Vec<u8>,
    /// Bytes seen so far.
    offset: u64,
    /// Bytes of entry data (and padding) still to pass before the next header.
    skip: u64,
    collect: Option<Collect>,
    pending: Pending,
    /// GNU sparse extension blocks follow; then this many bytes of data and padding.
    sparse_then: Option<u64>,
    seen: HashSet<u64>,
    keys: RandomState,
    failed: bool,
}

impl<R> CheckedTar<R> {
    /// Checks the tar read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            block: Vec::with_capacity(BLOCK as usize),
            offset: 0,
            skip: 0,
            collect: None,
            pending: Pending::default(),
            sparse_then: None,
            seen: HashSet::new(),
            keys: RandomState::new(),
            failed: false,
        }
    }

    /// The reader this checks.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn feed(&mut self, mut buf: &[u8]) -> Result<(), EntryError> {
        while !buf.is_empty() {
            if let Some(mut c) = self.collect.take() {
                let n = c.remaining.min(buf.len() as u64) as usize;
                c.data.extend_from_slice(&buf[..n]);
                c.remaining -= n as u64;
                self.offset += n as u64;
                buf = &buf[n..];
                if c.remaining == 0 {
                    self.skip = c.padding;
                    self.extension(c)?;
                } else {
                    self.collect = Some(c);
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64) as usize;
                self.skip -= n as u64;
                self.offset += n as u64;
                buf = &buf[n..];
                continue;
            }
            let n = (BLOCK as usize - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..n]);
            self.offset += n as u64;
            buf = &buf[n..];
            if self.block.len() == BLOCK as usize {
                let block = std::mem::take(&mut self.block);
                let at = self.offset - BLOCK;
                match self.sparse_then {
                    Some(then) => match block[504] {
                        0 => {
                            self.sparse_then = None;
                            self.skip = then;
                        }
                        1 => {}
                        _ => {
                            return Err(malformed(
                                at,
                                "a GNU sparse block's `isextended` is not 0 or 1",
                            ));
                        }
                    },
                    None => self.on_header(&block, at)?,
                }
                self.block = block;
                self.block.clear();
            }
        }
        Ok(())
    }

    /// Fails when the tar ends inside an entry.
    fn at_end(&self) -> Result<(), EntryError> {
        if self.collect.is_some()
            || !self.pending.is_empty()
            || !self.block.is_empty()
            || self.skip > 0
            || self.sparse_then.is_some()
        {
            return Err(malformed(
                self.offset,
                "the layer ends inside an entry (it is truncated)",
            ));
        }
        Ok(())
    }

    fn on_header(&mut self, h: &[u8], at: u64) -> Result<(), EntryError> {
        if h.iter().all(|&b| b == 0) {
            if !self.pending.is_empty() {
                return Err(malformed(
                    at,
                    "extended headers are followed by the end of the archive, not an entry",
                ));
            }
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(h);
        let raw_size = header
            .entry_size()
            .map_err(|e| malformed(at, format!("unreadable size ({})", first_line(&e))))?;
        let kind = h[156];
        if let Some(what) = extension_kind(kind) {
            if header.as_ustar().is_none() && header.as_gnu().is_none() {
                return Err(malformed(
                    at,
                    format!(
                        "a {what} header without the ustar or GNU magic, which readers apply \
                         differently"
                    ),
                ));
            }
            if raw_size > EXTENDED_HEADER_CAP {
                return Err(EntryError::ExtendedHeaderTooLarge {
                    kind: what,
                    offset: at,
                    size: raw_size,
                });
            }
            let twice = match kind {
                b'x' => self.pending.pax.is_some(),
                b'L' => self.pending.long_name.is_some(),
                b'K' => self.pending.long_link.is_some(),
                _ => !self.pending.is_empty(),
            };
            if twice {
                let reason = if kind == b'g' {
                    "a PAX g header between an entry's extended headers and the entry".into()
                } else {
                    format!("a second {what} header for the same entry")
                };
                return Err(malformed(at, reason));
            }
            if kind == b'g' {
                // The tar crate gives a global header as an entry of its own, by its own name.
                let name = ustar_path(h, at)?;
                if escapes(&name) {
                    return Err(EntryError::Escapes { path: lossy(&name) });
                }
            }
            let c = Collect {
                kind,
                data: Vec::with_capacity(raw_size as usize),
                remaining: raw_size,
                padding: padded(raw_size, at)? - raw_size,
                offset: at,
            };
            if raw_size == 0 {
                self.skip = 0;
                return self.extension(c);
            }
            self.collect = Some(c);
            return Ok(());
        }

        let pending = std::mem::take(&mut self.pending);
        let pax = pending.pax.unwrap_or_default();
        let size = pax.size.unwrap_or(raw_size);
        let path = effective(
            at,
            "path",
            pax.path.as_deref(),
            pending.long_name.as_deref(),
            ustar_path(h, at)?,
        )?;
        // Go reads no data for these (an old-style `\0` entry named `dir/` is a directory to
        // it); the tar crate reads `size` bytes.
        if size > 0 && (is_header_only(kind) || (kind == 0 && path.ends_with(b"/"))) {
            return Err(malformed(
                at,
                format!(
                    "a link, directory or device entry (type {kind:#04x}) with {size} bytes of \
                     data, which readers skip differently"
                ),
            ));
        }
        if let Some(name) = &pax.sparse_name
            && name != &path
        {
            return Err(malformed(
                at,
                format!(
                    "`GNU.sparse.name` `{}` differs from the entry's path `{}`",
                    lossy(name),
                    lossy(&path)
                ),
            ));
        }
        if escapes(&path) {
            return Err(EntryError::Escapes { path: lossy(&path) });
        }
        let ustar_link = header.link_name_bytes().map(|l| l.into_owned());
        let has_link = pax.linkpath.is_some() || pending.long_link.is_some();
        if kind == b'1' || kind == b'2' || has_link {
            let target = effective(
                at,
                "link target",
                pax.linkpath.as_deref(),
                pending.long_link.as_deref(),
                ustar_link.unwrap_or_default(),
            )?;
            if kind == b'1' {
                if target.is_empty() || escapes(&target) {
                    return Err(EntryError::LinkEscapes {
                        path: lossy(&path),
                        target: lossy(&target),
                    });
                }
                if !self.seen.contains(&self.key(&target)) {
                    return Err(EntryError::MissingLinkTarget {
                        path: lossy(&normalize(&path)),
                        target: lossy(&normalize(&target)),
                    });
                }
            }
        }
        let key = self.key(&path);
        self.seen.insert(key);
        let data = padded(size, at)?;
        if kind == b'S' {
            let Some(gnu) = header.as_gnu() else {
                return Err(malformed(at, "a GNU sparse entry without the GNU magic"));
            };
            match gnu.isextended[0] {
                0 => {}
                1 => {
                    self.sparse_then = Some(data);
                    return Ok(());
                }
                _ => {
                    return Err(malformed(
                        at,
                        "a GNU sparse header's `isextended` is not 0 or 1",
                    ));
                }
            }
        }
        self.skip = data;
        Ok(())
    }

    /// Takes in a complete extended header.
    fn extension(&mut self, c: Collect) -> Result<(), EntryError> {
        match c.kind {
            b'L' => self.pending.long_name = Some(long_name(&c.data, c.offset)?),
            b'K' => self.pending.long_link = Some(long_name(&c.data, c.offset)?),
            b'x' => self.pending.pax = Some(parse_pax(&c.data, c.offset)?),
            _ => {
                // A global header applies to no entry for Docker or the tar crate; other tools
                // apply it to every later one, so its paths must be safe too.
                let pax = parse_pax(&c.data, c.offset)?;
                for value in [&pax.path, &pax.linkpath].into_iter().flatten() {
                    if escapes(value) {
                        return Err(EntryError::Escapes { path: lossy(value) });
                    }
                }
            }
        }
        Ok(())
    }

    fn key(&self, path: &[u8]) -> u64 {
        self.keys.hash_one(normalize(path))
    }
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}

fn extension_kind(kind: u8) -> Option<&'static str> {
    match kind {
        b'x' => Some("PAX x"),
        b'g' => Some("PAX g"),
        b'L' => Some("GNU long name"),
        b'K' => Some("GNU long link"),
        _ => None,
    }
}

/// Types Go's `archive/tar` reads no data for, whatever their size field says.
fn is_header_only(kind: u8) -> bool {
    matches!(kind, b'1'..=b'6')
}

fn padded(size: u64, at: u64) -> Result<u64, EntryError> {
    size.div_ceil(BLOCK)
        .checked_mul(BLOCK)
        .ok_or_else(|| malformed(at, format!("entry size {size} overflows")))
}

/// A GNU long name's bytes: one trailing NUL is dropped (the tar crate drops one; Go cuts at the
/// first), so a NUL inside is refused.
fn long_name(data: &[u8], at: u64) -> Result<Vec<u8>, EntryError> {
    let name = data.strip_suffix(b"\0").unwrap_or(data);
    if name.contains(&0) {
        return Err(malformed(at, "a GNU long name with a NUL inside"));
    }
    Ok(name.to_vec())
}

/// The path or link target an entry gets: a GNU long name wins over a PAX record for the tar
/// crate and for Go (which merges PAX first, then the GNU name); a reader that applies them the
/// other way round would see another, so the two must agree; else the header's own field.
fn effective(
    at: u64,
    what: &str,
    pax: Option<&[u8]>,
    gnu: Option<&[u8]>,
    header: Vec<u8>,
) -> Result<Vec<u8>, EntryError> {
    match (pax, gnu) {
        (Some(p), Some(g)) if p != g => Err(malformed(
            at,
            format!(
                "the PAX {what} `{}` and the GNU long {what} `{}` differ",
                lossy(p),
                lossy(g)
            ),
        )),
        (Some(v), _) | (None, Some(v)) => Ok(v.to_vec()),
        (None, None) => Ok(header),
    }
}

fn cut(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

/// The header's own path, as the tar crate reads it; refused when Go reads another.
fn ustar_path(h: &[u8], at: u64) -> Result<Vec<u8>, EntryError> {
    let ours = tar::Header::from_byte_slice(h).path_bytes().into_owned();
    let name = cut(&h[..100]);
    let go = if &h[257..263] == b"ustar\0" {
        let prefix = if &h[508..512] == b"tar\0" {
            cut(&h[345..476])
        } else {
            cut(&h[345..500])
        };
        if prefix.is_empty() {
            name.to_vec()
        } else {
            [prefix, b"/", name].concat()
        }
    } else {
        name.to_vec()
    };
    if go != ours {
        return Err(malformed(
            at,
            format!(
                "readers take the path as `{}` or `{}`",
                lossy(&ours),
                lossy(&go)
            ),
        ));
    }
    Ok(ours)
}

/// A PAX header's records, as Go reads them (strictly; a later record wins) and checked against
/// what the tar crate reads (line by line; the first record wins, a malformed one is skipped).
fn parse_pax(data: &[u8], at: u64) -> Result<Pax, EntryError> {
    let mut go = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        let bad = |why: &str| malformed(at, format!("a malformed PAX record: {why}"));
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let digits = &rest[..space];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad("the length is not a number"));
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("the length is not a number"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("its length does not end it with a newline"));
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no `=`"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" | b"linkpath" | b"GNU.sparse.name" if value.contains(&0) => {
                return Err(bad("a NUL in a path"));
            }
            b"path" => go.path = Some(value.to_vec()),
            b"linkpath" => go.linkpath = Some(value.to_vec()),
            b"GNU.sparse.name" => go.sparse_name = Some(value.to_vec()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("`size` is not a number"))?;
                go.size = Some(size);
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    let find = |key: &[u8]| {
        tar::PaxExtensions::new(data)
            .filter_map(Result::ok)
            .find(|e| e.key_bytes() == key)
            .map(|e| e.value_bytes().to_vec())
    };
    // The tar crate's size: the first `size` record, none after a malformed record.
    let mut crate_size = None;
    for e in tar::PaxExtensions::new(data) {
        let Ok(e) = e else { break };
        if e.key_bytes() == b"size" {
            crate_size = e.value().ok().and_then(|v| v.parse::<u64>().ok());
            break;
        }
    }
    let theirs = Pax {
        path: find(b"path"),
        linkpath: find(b"linkpath"),
        size: crate_size,
        sparse_name: go.sparse_name.clone(),
    };
    if theirs != go {
        return Err(malformed(
            at,
            "a PAX header the tar crate and Go's archive/tar read differently (a repeated \
             record, or a newline inside a value)",
        ));
    }
    Ok(go)
}

/// True when `path` is absolute or has a `..` component.
fn escapes(path: &[u8]) -> bool {
    path.first() == Some(&b'/') || path.split(|&b| b == b'/').any(|c| c == b"..")
}

/// `path` without `.` and empty components: how extraction names it.
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for c in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

impl<R: Read> Read for CheckedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(malformed(self.offset, "the layer was already refused").into());
        }
        let n = self.inner.read(buf)?;
        let checked = if n == 0 && !buf.is_empty() {
            self.at_end()
        } else {
            self.feed(&buf[..n])
        };
        checked.map_err(|e| {
            self.failed = true;
            io::Error::from(e)
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all(bytes: &[u8]) -> Result<(), String> {
        io::copy(&mut CheckedTar::new(bytes), &mut io::sink())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn header(kind: u8, name: &[u8], link: &[u8], size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name);
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link);
        h.set_size(size);
        h.set_mode(0o644);
        h.as_mut_bytes()[156] = kind;
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len = len.to_string().len() + body.len();
        }
        format!("{len}{body}")
    }

    /// Appends an entry: header and data padded to a block.
    fn entry(out: &mut Vec<u8>, kind: u8, name: &str, link: &str, data: &[u8]) {
        out.extend(header(
            kind,
            name.as_bytes(),
            link.as_bytes(),
            data.len() as u64,
        ));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn end(mut out: Vec<u8>) -> Vec<u8> {
        out.extend([0u8; 1024]);
        out
    }

    #[test]
    fn effective_paths_are_checked() {
        let pax = |records: &[(&str, &str)], kind: u8, name: &str, link: &str| {
            let mut out = Vec::new();
            let data: String = records.iter().map(|(k, v)| record(k, v)).collect();
            entry(&mut out, b'x', "PaxHeader", "", data.as_bytes());
            entry(&mut out, kind, name, link, b"");
            end(out)
        };
        let mut lower = Vec::new();
        entry(&mut lower, b'0', "etc/passwd", "", b"x");
        // PAX linkpath on a hard link.
        let mut t = lower.clone();
        t.extend(pax(
            &[("linkpath", "../../etc/shadow")],
            b'1',
            "a",
            "etc/passwd",
        ));
        assert!(check_all(&t).unwrap_err().contains("../../etc/shadow"));
        // A PAX path.
        let e = check_all(&pax(&[("path", "/etc/cron.d/x")], b'0', "fine", "")).unwrap_err();
        assert!(e.contains("/etc/cron.d/x"), "{e}");
        // A fake `path=` before the real one: readers disagree.
        let e = check_all(&pax(&[("path", "ok"), ("path", "../x")], b'0', "ok", "")).unwrap_err();
        assert!(e.contains("read differently"), "{e}");
        // GNU long link.
        let mut t = lower.clone();
        entry(&mut t, b'K', "././@LongLink", "", b"/etc/passwd\0");
        entry(&mut t, b'1', "b", "etc/passwd", b"");
        assert!(
            check_all(&end(t))
                .unwrap_err()
                .contains("points to `/etc/passwd`")
        );
        // GNU long name.
        let mut t = Vec::new();
        entry(&mut t, b'L', "././@LongLink", "", b"../../x\0");
        entry(&mut t, b'0', "x", "", b"");
        assert!(check_all(&end(t)).unwrap_err().contains("../../x"));
        // A GNU long name and a PAX path that differ.
        let mut t = Vec::new();
        entry(&mut t, b'L', "././@LongLink", "", b"a\0");
        entry(
            &mut t,
            b'x',
            "PaxHeader",
            "",
            record("path", "b").as_bytes(),
        );
        entry(&mut t, b'0', "x", "", b"");
        assert!(check_all(&end(t)).unwrap_err().contains("differ"));
        // Valid: long path and link through PAX.
        let long = format!("{}/file", "d".repeat(150));
        let mut t = Vec::new();
        entry(
            &mut t,
            b'x',
            "PaxHeader",
            "",
            record("path", &long).as_bytes(),
        );
        entry(&mut t, b'0', "short", "", b"data");
        entry(
            &mut t,
            b'x',
            "PaxHeader",
            "",
            record("linkpath", &long).as_bytes(),
        );
        entry(&mut t, b'1', "hard", "short", b"");
        check_all(&end(t)).unwrap();
    }

    #[test]
    fn hard_links_need_an_earlier_target() {
        let mut t = Vec::new();
        entry(&mut t, b'1', "b", "a", b"");
        entry(&mut t, b'0', "a", "", b"x");
        let e = check_all(&end(t)).unwrap_err();
        assert!(e.contains("hard link `b` points to `a`"), "{e}");
        let mut t = Vec::new();
        entry(&mut t, b'0', "./dir/a", "", b"x");
        entry(&mut t, b'1', "b", "dir//a", b"");
        check_all(&end(t)).unwrap();
    }

    #[test]
    fn extended_headers_are_capped_before_being_read() {
        let mut t = header(b'x', b"PaxHeader", b"", 2 << 30);
        t.extend([b'9'; 4096]);
        let e = check_all(&t).unwrap_err();
        assert!(e.contains("too large") && e.contains("2147483648"), "{e}");
    }

    #[test]
    fn data_after_a_header_only_entry_or_a_truncated_tar_is_refused() {
        let mut t = Vec::new();
        entry(&mut t, b'5', "dir/", "", &[0; 600]);
        assert!(check_all(&end(t)).unwrap_err().contains("skip differently"));
        let mut t = Vec::new();
        entry(&mut t, 0, "dir/", "", &[0; 600]);
        assert!(check_all(&end(t)).unwrap_err().contains("type 0x00"));
        let mut t = Vec::new();
        entry(&mut t, 0, "file", "", &[0; 600]);
        check_all(&end(t)).unwrap();
        let mut t = Vec::new();
        entry(&mut t, b'0', "a", "", &[1; 600]);
        assert!(check_all(&t[..700]).unwrap_err().contains("truncated"));
    }
}
