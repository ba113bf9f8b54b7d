//! Where layer tars are written: deterministic entries, sorted, owned by root, fixed mtimes.
//!
//! Every layer tar this crate makes goes through [`write_layer_tar`]: entries sorted by path,
//! parent directories added as `0755`, uid/gid 0 with no user or group names, one mtime for all.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::cancel::Cancel;

/// The bytes of a regular file, produced when the tar is written (read from a package,
/// patched on the way, ...).
pub trait FileSource: Send + Sync + fmt::Debug {
    /// The file's size and a reader of exactly that many bytes.
    fn open(&self) -> io::Result<(u64, Box<dyn Read + '_>)>;
}

/// What one entry of a layer holds.
#[derive(Clone, Debug)]
pub enum EntryData {
    /// A directory.
    Dir,
    /// A regular file read from disk when the tar is written.
    File(PathBuf),
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A regular file whose bytes `FileSource` gives when the tar is written.
    Source(Arc<dyn FileSource>),
    /// A symbolic link to this target.
    Symlink(PathBuf),
    /// A hard link to another entry of the same layer (its path inside the image).
    HardLink(PathBuf),
}

impl PartialEq for EntryData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Dir, Self::Dir) => true,
            (Self::File(a), Self::File(b))
            | (Self::Symlink(a), Self::Symlink(b))
            | (Self::HardLink(a), Self::HardLink(b)) => a == b,
            (Self::Bytes(a), Self::Bytes(b)) => a == b,
            (Self::Source(a), Self::Source(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for EntryData {}

/// One entry of a layer: its path inside the image, its content and its permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path inside the image (no leading `/`).
    pub path: PathBuf,
    /// What the entry holds.
    pub data: EntryData,
    /// Permission bits (`0o755`, `0o644`, ...).
    pub mode: u32,
}

impl Entry {
    /// An entry for the file, directory or symlink at `source`, stored at `path` in the image.
    pub fn from_fs(source: &Path, path: PathBuf) -> io::Result<Self> {
        let meta = std::fs::symlink_metadata(source)?;
        let mode = meta.permissions().mode() & 0o7777;
        let data = if meta.file_type().is_symlink() {
            EntryData::Symlink(std::fs::read_link(source)?)
        } else if meta.is_dir() {
            EntryData::Dir
        } else if meta.is_file() {
            EntryData::File(source.to_path_buf())
        } else {
            return Err(io::Error::other(format!(
                "`{}` is not a file, directory or symlink",
                source.display()
            )));
        };
        Ok(Self { path, data, mode })
    }
}

/// Checks that `path` is relative and stays inside the image root (no `..`, no `/` prefix).
pub fn check_relative(path: &Path) -> io::Result<()> {
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "layer path `{}` must be relative and must not contain `..`",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Entries at or below `root` belong to `uid`:`gid`; all others to root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// The directory (relative to the image root) whose tree the user owns.
    pub root: PathBuf,
    /// The owner's uid.
    pub uid: u32,
    /// The owner's gid.
    pub gid: u32,
}

/// Writes `entries` as a deterministic tar to `out`, adding missing parent directories.
///
/// Later entries with the same path replace earlier ones. Every entry gets `mtime` and is owned
/// by root.
pub fn write_layer_tar(
    entries: impl IntoIterator<Item = Entry>,
    mtime: u64,
    out: &mut dyn Write,
    cancel: &Cancel,
) -> io::Result<()> {
    write_layer_tar_owned(entries, mtime, None, out, cancel)
}

/// [`write_layer_tar`], with the tree at `owner.root` owned by `owner`'s uid and gid.
pub fn write_layer_tar_owned(
    entries: impl IntoIterator<Item = Entry>,
    mtime: u64,
    owner: Option<&Ownership>,
    out: &mut dyn Write,
    cancel: &Cancel,
) -> io::Result<()> {
    let mut sorted: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    for mut entry in entries {
        check_relative(&entry.path)?;
        entry.path = clean(&entry.path);
        if entry.path.as_os_str().is_empty() {
            continue;
        }
        let mut parent = entry.path.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            sorted.entry(p.to_path_buf()).or_insert_with(|| Entry {
                path: p.to_path_buf(),
                data: EntryData::Dir,
                mode: 0o755,
            });
            parent = p.parent();
        }
        sorted.insert(entry.path.clone(), entry);
    }

    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in sorted.into_values() {
        cancel.check()?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(mtime);
        let (uid, gid) = match owner {
            Some(o) if entry.path.starts_with(&o.root) => (o.uid, o.gid),
            _ => (0, 0),
        };
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mode(entry.mode);
        match &entry.data {
            EntryData::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                let mut name = entry.path.as_os_str().to_owned();
                name.push("/");
                builder.append_data(&mut header, Path::new(&name), io::empty())?;
            }
            EntryData::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &entry.path, target)?;
            }
            EntryData::Bytes(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &entry.path, bytes.as_slice())?;
            }
            EntryData::HardLink(target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, &entry.path, target)?;
            }
            EntryData::File(source) => {
                let file = File::open(source).map_err(|e| {
                    io::Error::new(e.kind(), format!("reading `{}`: {e}", source.display()))
                })?;
                let len = file.metadata()?.len();
                append_exact(&mut builder, &mut header, &entry.path, len, file)?;
            }
            EntryData::Source(source) => {
                let (len, reader) = source.open()?;
                append_exact(&mut builder, &mut header, &entry.path, len, reader)?;
            }
        }
    }
    builder.finish()
}

/// Appends a regular file of `len` bytes read from `data`; a source that gives fewer or more
/// bytes (a file that changed while read) is an error, never a corrupt tar.
fn append_exact(
    builder: &mut tar::Builder<&mut dyn Write>,
    header: &mut tar::Header,
    path: &Path,
    len: u64,
    data: impl Read,
) -> io::Result<()> {
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    let mut exact = Exact {
        inner: data.take(len + 1),
        left: len,
        path,
    };
    builder.append_data(header, path, &mut exact)
}

/// A reader of exactly `left` bytes.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    path: &'a Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left || (n == 0 && self.left > 0 && !buf.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`{}` changed size while it was read", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::checked_tar::CheckedTar;

    fn entry(path: &str, data: EntryData) -> Entry {
        Entry {
            path: path.into(),
            data,
            mode: 0o644,
        }
    }

    fn list(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn sorted_with_parents_and_fixed_metadata() {
        let mut out = Vec::new();
        let entries = vec![
            entry("opt/conda/bin/z", EntryData::Bytes(b"z".to_vec())),
            entry("opt/conda/a", EntryData::Symlink("bin/z".into())),
        ];
        write_layer_tar(entries, 42, &mut out, &Cancel::new()).unwrap();
        let got = list(&out);
        let names: Vec<_> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "opt/",
                "opt/conda/",
                "opt/conda/a",
                "opt/conda/bin/",
                "opt/conda/bin/z"
            ]
        );
        assert!(got.iter().all(|g| g.2 == 0 && g.3 == 42));
        assert_eq!(got[0].1, 0o755);
    }

    #[test]
    fn same_input_same_bytes_and_long_names_work() {
        let long = format!("a/{}/file", "x".repeat(150));
        let make = || {
            let mut out = Vec::new();
            write_layer_tar(
                vec![entry(&long, EntryData::Bytes(vec![1; 1000]))],
                0,
                &mut out,
                &Cancel::new(),
            )
            .unwrap();
            out
        };
        let a = make();
        assert_eq!(a, make());
        assert!(list(&a).iter().any(|g| g.0 == long));
    }

    fn check_all(bytes: &[u8]) -> io::Result<()> {
        io::copy(&mut CheckedTar::new(bytes), &mut io::sink()).map(|_| ())
    }

    /// A tar with one entry whose header names `path` verbatim (as a hostile tool could write).
    fn raw_tar(path: &str, long: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut builder = tar::Builder::new(&mut out);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        if long {
            // A GNU long-name entry carrying the path, then the real header.
            let mut l = tar::Header::new_gnu();
            l.set_size(path.len() as u64 + 1);
            l.set_entry_type(tar::EntryType::GNULongName);
            l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            l.set_cksum();
            builder.append(&l, format!("{path}\0").as_bytes()).unwrap();
            h.as_gnu_mut().unwrap().name[..5].copy_from_slice(b"dummy");
        } else {
            h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        }
        h.set_cksum();
        builder.append(&h, &b"x"[..]).unwrap();
        builder.finish().unwrap();
        drop(builder);
        out
    }

    #[test]
    fn checked_tar_refuses_escaping_entries() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../x"] {
            let err = check_all(&raw_tar(bad, false)).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let long_bad = format!("{}/../../../etc/shadow", "d".repeat(120));
        let err = check_all(&raw_tar(&long_bad, true)).unwrap_err();
        assert!(err.to_string().contains(&long_bad), "{err}");
        check_all(&raw_tar("fine/path", false)).unwrap();
        check_all(&raw_tar(&format!("{}/ok", "d".repeat(120)), true)).unwrap();
        // What this crate writes passes.
        let mut ours = Vec::new();
        write_layer_tar(
            vec![entry(
                &format!("{}/f", "x".repeat(200)),
                EntryData::Bytes(vec![7; 3000]),
            )],
            0,
            &mut ours,
            &Cancel::new(),
        )
        .unwrap();
        check_all(&ours).unwrap();
    }

    #[test]
    fn rejects_escaping_paths() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            let mut out = Vec::new();
            let err = write_layer_tar(
                vec![entry(bad, EntryData::Dir)],
                0,
                &mut out,
                &Cancel::new(),
            )
            .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}: {err}");
            assert_eq!(
                err.to_string(),
                format!("layer path `{bad}` must be relative and must not contain `..`")
            );
            assert!(out.is_empty(), "{bad}: nothing is written");
        }
    }
}
