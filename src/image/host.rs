//! Files from the host for a layer: the one walker of host directories, for
//! [`Image::add_layer_path`](crate::image::Image::add_layer_path) and the Python package's
//! layers alike. Every path is read beneath the directory it was found in
//! ([`crate::beneath`]): a symlink is kept as a symlink and never followed, FIFOs, sockets and
//! devices are refused, and a directory's entries are taken in name order.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::beneath::{Dir, Kind};

use super::layer_tar::{Entry, EntryData, FileSource};
use super::{Error, Layer, Result};

/// What a scanned path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// One scanned path, as a filter sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFile {
    /// Where it goes in the image (relative).
    pub path: String,
    /// What it is.
    pub kind: HostKind,
    /// Its permission bits.
    pub mode: u32,
    /// Its size in bytes (files only).
    pub size: u64,
    /// Where a symlink points (empty for others).
    pub target: String,
}

/// A scanned entry a filter keeps, with the name, mode and link target it gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// The index of the entry in [`HostFiles::files`].
    pub index: usize,
    /// Where it goes in the image.
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// A new link target, for a symlink.
    pub target: Option<String>,
}

/// Host paths and bytes scanned for a layer, before a filter has seen them.
#[derive(Debug, Default)]
pub struct HostFiles {
    entries: Vec<Entry>,
    sizes: Vec<u64>,
}

impl HostFiles {
    /// Nothing scanned yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `path` to go at `arc` in the image: a directory's tree (with `recursive`; else
    /// the directory alone), a file, or a symlink (never followed).
    pub fn scan(&mut self, path: &Path, arc: &str, recursive: bool) -> Result<()> {
        self.scan_excluding(path, arc, recursive, &Excludes::none())
    }

    /// [`Self::scan`], leaving out what `excludes` names in a directory's tree (an excluded
    /// directory is not entered).
    pub fn scan_excluding(
        &mut self,
        path: &Path,
        arc: &str,
        recursive: bool,
        excludes: &Excludes,
    ) -> Result<()> {
        let arc = arc_path(arc)?;
        let meta = std::fs::symlink_metadata(path).map_err(Error::io("reading", path))?;
        if !meta.is_dir() {
            let (parent, name) = split(path)?;
            let dir = Arc::new(Dir::open(parent).map_err(Error::io("reading", parent))?);
            return self.push(&dir, name, arc, &Excludes::none()).map(drop);
        }
        let dir = Arc::new(Dir::open(path).map_err(Error::io("reading", path))?);
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let is_dir = self.push(&dir, &rel, arc.join(&rel), excludes)?;
            if is_dir == Some(true) && recursive {
                stack.extend(children(path, &rel)?.into_iter().rev());
            }
        }
        Ok(())
    }

    /// The scanned entries, for a layer tar.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    /// Adds a file holding `bytes` at `arc`, mode 0644.
    pub fn add_bytes(&mut self, arc: &str, bytes: Vec<u8>) -> Result<()> {
        let path = arc_path(arc)?;
        self.sizes.push(bytes.len() as u64);
        self.entries.push(Entry {
            path,
            data: EntryData::Bytes(bytes),
            mode: 0o644,
        });
        Ok(())
    }

    /// What was scanned, in order.
    pub fn files(&self) -> Vec<HostFile> {
        self.entries
            .iter()
            .zip(&self.sizes)
            .map(|(e, size)| {
                let (kind, target) = match &e.data {
                    EntryData::Dir => (HostKind::Dir, String::new()),
                    EntryData::Symlink(t) | EntryData::HardLink(t) => {
                        (HostKind::Symlink, t.to_string_lossy().into_owned())
                    }
                    _ => (HostKind::File, String::new()),
                };
                HostFile {
                    path: e.path.to_string_lossy().into_owned(),
                    kind,
                    mode: e.mode,
                    size: *size,
                    target,
                }
            })
            .collect()
    }

    /// A layer of every scanned entry, its entries' mtime `mtime`.
    pub fn into_layer(self, mtime: u64, description: impl Into<String>) -> Layer {
        Layer::from_entries(self.entries, mtime, description)
    }

    /// A layer of the entries `kept` lists, in that order, with the names, modes and link
    /// targets given there (an entry renamed to the root is left out).
    pub fn layer_of(
        &self,
        kept: impl IntoIterator<Item = Kept>,
        mtime: u64,
        description: impl Into<String>,
    ) -> Result<Layer> {
        let mut entries = Vec::new();
        for k in kept {
            let entry = self
                .entries
                .get(k.index)
                .ok_or_else(|| Error::invalid(&k.path, format!("no scanned entry {}", k.index)))?;
            let path = arc_path(&k.path)?;
            if path.as_os_str().is_empty() {
                continue;
            }
            let data = match (&entry.data, k.target) {
                (EntryData::Symlink(_), Some(t)) => EntryData::Symlink(PathBuf::from(t)),
                (data, _) => data.clone(),
            };
            entries.push(Entry {
                path,
                data,
                mode: k.mode & 0o7777,
            });
        }
        Ok(Layer::from_entries(entries, mtime, description))
    }

    /// Adds the entry for `rel` beneath `dir` (the directory itself when `rel` is empty) at
    /// `arc` unless `excludes` names it: whether it is a directory, `None` when left out.
    fn push(
        &mut self,
        dir: &Arc<Dir>,
        rel: &str,
        arc: PathBuf,
        excludes: &Excludes,
    ) -> Result<Option<bool>> {
        let shown = dir.path().join(rel);
        let (data, mode, size) = if rel.is_empty() {
            let meta = std::fs::metadata(dir.path()).map_err(Error::io("reading", &shown))?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
            (EntryData::Dir, mode, 0)
        } else {
            let stat = dir.stat(rel).map_err(Error::io("reading", &shown))?;
            if excludes.excludes(rel, stat.kind == Kind::Dir) {
                return Ok(None);
            }
            let data = match stat.kind {
                Kind::Dir => EntryData::Dir,
                Kind::Symlink => {
                    EntryData::Symlink(dir.read_link(rel).map_err(Error::io("reading", &shown))?)
                }
                Kind::File => EntryData::Source(Arc::new(Beneath {
                    dir: dir.clone(),
                    rel: rel.to_string(),
                })),
                Kind::Other => {
                    return Err(Error::host(
                        &shown,
                        "is not a file, directory or symlink: a FIFO, socket or device cannot \
                         go into a layer; leave it out (a `.dockerignore` pattern)",
                    ));
                }
            };
            let size = if stat.kind == Kind::File {
                stat.size
            } else {
                0
            };
            (data, stat.mode, size)
        };
        let is_dir = matches!(data, EntryData::Dir);
        self.entries.push(Entry {
            path: arc,
            data,
            mode,
        });
        self.sizes.push(size);
        Ok(Some(is_dir))
    }
}

/// The paths of a directory's tree left out of its layer: the patterns of the
/// [`Excludes::FILE`] at its root, in gitignore syntax, matched by the `ignore` crate as
/// ripgrep matches them (a pattern without `/` matches at any depth, `!` brings a path back
/// unless its directory is left out, `/` at the end matches directories only).
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    matcher: Option<ignore::gitignore::Gitignore>,
}

impl Excludes {
    /// The file whose patterns a directory's tree is filtered by.
    pub const FILE: &'static str = ".dockerignore";

    /// The largest [`Excludes::FILE`] read.
    const CAP: u64 = 1 << 20;

    /// Nothing left out.
    pub fn none() -> Self {
        Self::default()
    }

    /// What `dir`'s [`Excludes::FILE`] leaves out (nothing when it has none). The file is read
    /// beneath `dir`: a symlink there is refused, never followed.
    pub fn of_dir(dir: &Path) -> Result<Self> {
        let shown = dir.join(Self::FILE);
        let opened = Dir::open(dir).map_err(Error::io("reading", dir))?;
        let bytes = match opened.read_small(Self::FILE, Self::CAP) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::none()),
            Err(e) => return Err(Error::io("reading", shown)(e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::host(&shown, "is not UTF-8"))?;
        let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
        for line in text.lines() {
            builder
                .add_line(Some(shown.clone()), line)
                .map_err(|e| Error::host(&shown, format!("has a bad pattern `{line}`: {e}")))?;
        }
        let matcher = builder
            .build()
            .map_err(|e| Error::host(&shown, e.to_string()))?;
        Ok(Self {
            matcher: Some(matcher),
        })
    }

    /// Whether `rel` (relative to the directory; a directory when `is_dir`) is left out.
    pub fn excludes(&self, rel: &str, is_dir: bool) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.matched(rel, is_dir).is_ignore())
    }
}

/// A path inside the image: relative, without `..`; `/` and `.` are the root (empty).
fn arc_path(text: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(text).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(Error::invalid(
                    text,
                    "a path in the image must not contain `..`",
                ));
            }
        }
    }
    Ok(out)
}

/// A file or symlink's directory and name (it is read through its directory).
fn split(path: &Path) -> Result<(&Path, &str)> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::host(path, "is not a UTF-8 file name"))?;
    Ok((parent, name))
}

/// The entries of the directory `rel` beneath `root`, as paths relative to `root`, sorted.
fn children(root: &Path, rel: &str) -> Result<Vec<String>> {
    let listed = root.join(rel);
    let mut names = Vec::new();
    for child in std::fs::read_dir(&listed).map_err(Error::io("reading", &listed))? {
        let child = child.map_err(Error::io("reading", &listed))?;
        let name = child
            .file_name()
            .into_string()
            .map_err(|n| Error::host(listed.join(n), "is not a UTF-8 file name"))?;
        names.push(if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        });
    }
    names.sort();
    Ok(names)
}

/// A regular file read beneath a directory opened once, following no symlink on the way.
#[derive(Debug)]
struct Beneath {
    dir: Arc<Dir>,
    rel: String,
}

impl FileSource for Beneath {
    fn open(&self) -> io::Result<(u64, Box<dyn Read + '_>)> {
        let file = self.dir.open_file(&self.rel).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("reading `{}/{}`: {e}", self.dir.path().display(), self.rel),
            )
        })?;
        let len = file.metadata()?.len();
        Ok((len, Box::new(file)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_scanned_in_name_order_and_symlinks_are_kept_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("secret");
        std::fs::write(&outside, b"host secret").unwrap();
        let app = root.path().join("app");
        std::fs::create_dir_all(app.join("b")).unwrap();
        std::fs::write(app.join("b/z.txt"), b"z").unwrap();
        std::fs::write(app.join("a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink(&outside, app.join("link")).unwrap();
        let mut files = HostFiles::new();
        files.scan(&app, "/srv/app", true).unwrap();
        let listed: Vec<(String, HostKind)> = files
            .files()
            .into_iter()
            .map(|f| (f.path, f.kind))
            .collect();
        assert_eq!(
            listed,
            [
                ("srv/app/".into(), HostKind::Dir),
                ("srv/app/a.txt".into(), HostKind::File),
                ("srv/app/b".into(), HostKind::Dir),
                ("srv/app/b/z.txt".into(), HostKind::File),
                ("srv/app/link".into(), HostKind::Symlink),
            ]
        );
        assert_eq!(files.files()[4].target, outside.display().to_string());
        let err = files.scan(&app, "../escape", true).unwrap_err().to_string();
        assert!(err.contains("must not contain `..`"), "{err}");
    }

    #[test]
    fn special_files_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = HostFiles::new()
            .scan(root.path(), "x", true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a file, directory or symlink"), "{err}");
    }
}
