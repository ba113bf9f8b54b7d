//! Where layer tars are written: deterministic entries, sorted, owned by root, fixed mtimes.
//!
//! Every layer tar this crate makes goes through [`write_layer_tar`]: entries sorted by path,
//! parent directories added as `0755`, uid/gid 0 with no user or group names, one mtime for all.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::cancel::Cancel;

/// What one entry of a layer holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryData {
    /// A directory.
    Dir,
    /// A regular file read from disk when the tar is written.
    File(PathBuf),
    /// A regular file with these bytes.
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(PathBuf),
}

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

/// Writes `entries` as a deterministic tar to `out`, adding missing parent directories.
///
/// Later entries with the same path replace earlier ones. Every entry gets `mtime`.
pub fn write_layer_tar(
    entries: impl IntoIterator<Item = Entry>,
    mtime: u64,
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
        header.set_uid(0);
        header.set_gid(0);
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
            EntryData::File(source) => {
                let file = File::open(source).map_err(|e| {
                    io::Error::new(e.kind(), format!("reading `{}`: {e}", source.display()))
                })?;
                let len = file.metadata()?.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(len);
                builder.append_data(&mut header, &entry.path, io::Read::take(file, len))?;
            }
        }
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn rejects_escaping_paths() {
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            let mut out = Vec::new();
            let r = write_layer_tar(
                vec![entry(bad, EntryData::Dir)],
                0,
                &mut out,
                &Cancel::new(),
            );
            assert!(r.is_err(), "{bad}");
        }
    }
}
