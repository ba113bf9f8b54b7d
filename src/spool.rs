//! The one way an archive's files are read without extracting them: a tar stream read once,
//! its entries checked and indexed, the bytes of the files wanted kept in one spool (memory,
//! then a single unlinked temporary file past [`MEMORY_CAP`]), and then read like a directory
//! ([`crate::beneath::Dir`] for extracted trees answers the same four questions: `stat`,
//! `read_link`, `open_file`, `read_small`). A package's files are thus read in any order from
//! one sequential pass over its archive, and nothing but that one anonymous file (which the
//! kernel drops on close, usually before it reaches the disk) is written.
//!
//! Checked while reading: every name by the caller's rule; no device, FIFO or other special
//! entry; a hard link only to a regular file earlier in the same archive; no name twice; no
//! entry beneath a symlink of the archive; a kept file no longer than the caller allows (the
//! rest is counted, not kept, so its real size can be reported); the whole stream no longer
//! than [`Limits::stream`]. Knows no conda and no OCI.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::beneath::{Kind, Stat};

/// The most bytes a spool keeps in memory before it moves to a temporary file, by default.
pub const MEMORY_CAP: usize = 16 << 20;

/// How many spools, and how many bytes in them, may be kept for later (each open spool past
/// its memory holds a file descriptor, and its bytes sit in the page cache until dropped).
#[derive(Debug)]
pub struct Budget {
    bytes: std::sync::atomic::AtomicU64,
    spools: std::sync::atomic::AtomicU64,
}

impl Budget {
    /// A budget of `spools` spools holding `bytes` bytes in all.
    pub fn new(spools: u64, bytes: u64) -> Self {
        Self {
            bytes: bytes.into(),
            spools: spools.into(),
        }
    }

    /// Takes one spool of `n` bytes from the budget, if it has them (never given back: a
    /// build keeps what it took until its layers are made).
    pub fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self
            .spools
            .fetch_update(Relaxed, Relaxed, |s| s.checked_sub(1))
            .is_err()
        {
            return false;
        }
        if self
            .bytes
            .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(n))
            .is_err()
        {
            self.spools.fetch_add(1, Relaxed);
            return false;
        }
        true
    }
}

/// How much of each file to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Index the entry, keep none of its bytes.
    Nothing,
    /// Keep its bytes, up to this many (longer files are counted, and refused when opened).
    Upto(u64),
}

/// The bounds of one read.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The most bytes the tar stream may hold (headers, padding and data).
    pub stream: u64,
    /// The most entries.
    pub entries: usize,
    /// The most bytes kept in memory before the spool moves to a temporary file.
    pub memory: usize,
}

/// One entry of the archive.
#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    mode: u32,
    /// The bytes the archive holds for it (a hard link: its target's).
    size: u64,
    /// Where its kept bytes are in the spool, if they were kept (all of them).
    data: Option<(u64, u64)>,
    link: Option<PathBuf>,
    /// The index of the first entry of its hard-link group, when it has one.
    group: Option<u64>,
    /// The index of the entry itself.
    index: u64,
    /// For a hard link, the entry it names.
    link_to: Option<String>,
}

/// The bytes kept: in memory, or in one unlinked temporary file.
#[derive(Debug)]
enum Store {
    Memory(Vec<u8>),
    File(File),
}

/// The files of one tar stream, indexed, with the bytes of those kept.
#[derive(Debug)]
pub struct TarFiles {
    nodes: HashMap<String, Node>,
    store: Arc<Store>,
    /// Where the archive is, for messages.
    what: String,
}

/// Why an entry is refused, naming it.
fn refused(name: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("`{name}`: {why}"))
}

/// The spool being written.
struct Writer {
    memory: Vec<u8>,
    file: Option<(File, u64)>,
    tmp_dir: PathBuf,
    memory_cap: usize,
    /// The buffer every entry is read through (one per read, not one per entry).
    scratch: Vec<u8>,
}

impl Writer {
    fn len(&self) -> u64 {
        self.file.as_ref().map_or(self.memory.len() as u64, |f| f.1)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + bytes.len() > self.memory_cap {
            let mut file = tempfile::tempfile_in(&self.tmp_dir)?;
            file.write_all(&self.memory)?;
            self.file = Some((file, self.memory.len() as u64));
            self.memory = Vec::new();
        }
        match &mut self.file {
            Some((file, len)) => {
                file.write_all(bytes)?;
                *len += bytes.len() as u64;
            }
            None => self.memory.extend_from_slice(bytes),
        }
        Ok(())
    }

    fn finish(self) -> Store {
        match self.file {
            Some((file, _)) => Store::File(file),
            None => Store::Memory(self.memory),
        }
    }
}

/// A reader that fails once more than `left` bytes went through it.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the archive expands past {} bytes, more than it may hold",
                    self.limit
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl TarFiles {
    /// Reads the tar stream `tar` (named `what` in messages) once: each entry's name checked
    /// by `check` (`Some(reason)` refuses it), the bytes kept as `keep` says, the spool's
    /// temporary file (if it needs one) made in `tmp_dir`. `cancelled` is asked between
    /// entries.
    pub fn read(
        tar: impl Read,
        what: &str,
        limits: Limits,
        check: &dyn Fn(&str) -> Option<&'static str>,
        keep: &dyn Fn(&str) -> Keep,
        tmp_dir: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<Self> {
        let bounded = Bounded {
            inner: tar,
            left: limits.stream,
            limit: limits.stream,
        };
        let mut archive = tar::Archive::new(bounded);
        let mut spool = Writer {
            memory: Vec::new(),
            file: None,
            tmp_dir: tmp_dir.to_path_buf(),
            memory_cap: limits.memory,
            scratch: vec![0u8; 256 << 10],
        };
        let mut nodes: HashMap<String, Node> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for entry in archive.entries()? {
            if cancelled() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
            }
            let mut entry = entry?;
            if order.len() >= limits.entries {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the archive holds more than {} entries", limits.entries),
                ));
            }
            let raw = entry.path_bytes();
            let name = std::str::from_utf8(&raw)
                .map_err(|_| refused(&String::from_utf8_lossy(&raw), "not UTF-8"))?
                .trim_end_matches('/')
                .to_string();
            if let Some(reason) = check(&name) {
                return Err(refused(&name, reason));
            }
            if nodes.contains_key(&name) {
                return Err(refused(&name, "the archive holds it twice"));
            }
            let node = Self::node(&mut entry, &name, &nodes, order.len(), keep, &mut spool)?;
            if let Some(first) = node.link_to.as_ref().and_then(|t| nodes.get_mut(t)) {
                first.group = node.group;
            }
            nodes.insert(name.clone(), node);
            order.push(name);
        }
        // The rest of the stream (a tar's trailing blocks): read, so that a decompressor checks
        // its checksum and a damaged tail is an error.
        io::copy(&mut archive.into_inner(), &mut io::sink())?;
        let mut files = Self {
            nodes,
            store: Arc::new(spool.finish()),
            what: what.to_string(),
        };
        files.add_parents();
        files.check_no_entry_beneath_a_symlink()?;
        Ok(files)
    }

    /// The node of one entry, its kept bytes appended to `spool`.
    fn node(
        entry: &mut tar::Entry<'_, impl Read>,
        name: &str,
        nodes: &HashMap<String, Node>,
        index: usize,
        keep: &dyn Fn(&str) -> Keep,
        spool: &mut Writer,
    ) -> io::Result<Node> {
        let header = entry.header();
        let mode = header.mode().map_err(|e| refused(name, e))? & 0o7777;
        let mut node = Node {
            kind: Kind::File,
            mode,
            size: 0,
            data: None,
            link: None,
            group: None,
            index: index as u64,
            link_to: None,
        };
        match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (size, data) = Self::file_bytes(entry, name, keep(name), spool)?;
                node.size = size;
                node.data = data;
            }
            tar::EntryType::Directory => node.kind = Kind::Dir,
            tar::EntryType::Symlink => {
                node.kind = Kind::Symlink;
                let target = entry
                    .link_name()?
                    .ok_or_else(|| refused(name, "a symlink without a target"))?;
                // Its size is its target's length, as `lstat` gives it for an extracted link.
                node.size = target.as_os_str().len() as u64;
                node.link = Some(target.into_owned());
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| refused(name, "a hard link without a target"))?;
                let target = target.to_string_lossy().trim_end_matches('/').to_string();
                let first = nodes.get(&target).filter(|t| t.kind == Kind::File).ok_or_else(|| {
                    refused(name, format!("a hard link to `{target}`, which is no regular file before it in the archive"))
                })?;
                node.size = first.size;
                node.data = first.data;
                node.group = Some(first.group.unwrap_or(first.index));
                node.link_to = Some(target);
            }
            other => {
                return Err(refused(
                    name,
                    format!("a {other:?} entry, which a package may not hold"),
                ));
            }
        }
        Ok(node)
    }

    /// The size of a regular file's bytes, and where they went in `spool` if kept whole.
    fn file_bytes(
        entry: &mut impl Read,
        name: &str,
        keep: Keep,
        spool: &mut Writer,
    ) -> io::Result<(u64, Option<(u64, u64)>)> {
        let cap = match keep {
            Keep::Nothing => 0,
            Keep::Upto(n) => n,
        };
        let start = spool.len();
        let mut kept = 0u64;
        let mut size = 0u64;
        let mut buf = std::mem::take(&mut spool.scratch);
        let read = loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(refused(name, e)),
            };
            size += n as u64;
            let room = cap.saturating_sub(kept).min(n as u64) as usize;
            if room > 0 {
                if let Err(e) = spool.append(&buf[..room]) {
                    break Err(e);
                }
                kept += room as u64;
            }
        };
        spool.scratch = buf;
        read?;
        let whole = keep != Keep::Nothing && kept == size;
        Ok((size, whole.then_some((start, size))))
    }

    /// Every directory an entry's path implies, as a directory.
    fn add_parents(&mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in names {
            let mut path = name.as_str();
            while let Some((parent, _)) = path.rsplit_once('/') {
                self.nodes.entry(parent.to_string()).or_insert(Node {
                    kind: Kind::Dir,
                    mode: 0o755,
                    size: 0,
                    data: None,
                    link: None,
                    group: None,
                    index: u64::MAX,
                    link_to: None,
                });
                path = parent;
            }
        }
    }

    /// Refuses an entry whose path goes through a symlink of the archive (extracting it
    /// would write through the link).
    fn check_no_entry_beneath_a_symlink(&self) -> io::Result<()> {
        for name in self.nodes.keys() {
            let mut path = name.as_str();
            while let Some((parent, _)) = path.rsplit_once('/') {
                if self
                    .nodes
                    .get(parent)
                    .is_some_and(|n| n.kind == Kind::Symlink)
                {
                    return Err(refused(
                        name,
                        format!("it is beneath the symlink `{parent}`"),
                    ));
                }
                path = parent;
            }
        }
        Ok(())
    }

    fn node_of(&self, rel: &str) -> io::Result<&Node> {
        self.nodes.get(rel).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{rel}` is not in {}", self.what),
            )
        })
    }

    /// What `rel` is (the index of its hard-link group's first entry as its shared inode).
    pub fn stat(&self, rel: &str) -> io::Result<Stat> {
        let n = self.node_of(rel)?;
        Ok(Stat {
            kind: n.kind,
            mode: n.mode,
            size: n.size,
            shared_inode: n.group,
        })
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &str) -> io::Result<PathBuf> {
        let n = self.node_of(rel)?;
        n.link.clone().ok_or_else(|| refused(rel, "not a symlink"))
    }

    /// The bytes of the regular file `rel`, with their length; refused when they were not kept
    /// (not asked for, or longer than allowed).
    pub fn open_file(&self, rel: &str) -> io::Result<(u64, Box<dyn Read + Send>)> {
        let n = self.node_of(rel)?;
        if n.kind != Kind::File {
            return Err(refused(rel, "not a regular file"));
        }
        let (offset, len) = n.data.ok_or_else(|| {
            refused(
                rel,
                format!(
                    "its {} bytes are more than the archive may hold for it",
                    n.size
                ),
            )
        })?;
        let reader = SpoolReader {
            store: self.store.clone(),
            offset,
            left: len,
        };
        Ok((len, Box::new(reader)))
    }

    /// The bytes of the regular file `rel`, refused when larger than `cap`.
    pub fn read_small(&self, rel: &str, cap: u64) -> io::Result<Vec<u8>> {
        let (len, reader) = self.open_file(rel)?;
        if len > cap {
            return Err(refused(rel, format!("larger than {cap} bytes")));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        reader.take(cap).read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// A file's kept bytes, read from the spool.
struct SpoolReader {
    store: Arc<Store>,
    offset: u64,
    left: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = match &*self.store {
            Store::Memory(bytes) => {
                let start = self.offset as usize;
                buf[..want].copy_from_slice(&bytes[start..start + want]);
                want
            }
            Store::File(file) => file.read_at(&mut buf[..want], self.offset)?,
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spool is short",
            ));
        }
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}
