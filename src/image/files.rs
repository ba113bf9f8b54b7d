//! Reading a few files of an image's filesystem (the top layer that has them wins), such as the
//! base's `/etc/passwd` or its `libc.so.6`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::{Cancel, Image, Result};

/// What a path holds in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileContent {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A symlink's target.
    Symlink(PathBuf),
}

/// The most bytes of one file [`read_files`] reads; a larger file is an error.
pub const MAX_FILE_SIZE: u64 = 64 << 20;

/// A path in a layer tar as the image sees it: relative, without `.`, `..` or a leading `/`.
pub fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Reads the files at `wanted` (paths in the image, with or without a leading `/`), following
/// symlinks; paths that no layer has, or that a later layer deleted, are absent from the result.
/// A file larger than [`MAX_FILE_SIZE`] is an error.
pub fn read_files(
    image: &Image,
    wanted: &[&str],
    cancel: &Cancel,
) -> Result<BTreeMap<String, FileContent>> {
    let mut found = BTreeMap::new();
    let mut pending: BTreeSet<PathBuf> = wanted.iter().map(|w| clean(Path::new(w))).collect();
    // Up to a few rounds, to follow symlinks to files named only by their targets.
    for _ in 0..4 {
        if pending.is_empty() {
            break;
        }
        let round = read_paths(image, &pending, cancel)?;
        let mut next = BTreeSet::new();
        for (path, content) in round {
            if let FileContent::Symlink(target) = &content {
                let resolved = clean(&path.parent().unwrap_or(Path::new("")).join(target));
                let resolved = if target.is_absolute() {
                    clean(target)
                } else {
                    resolved
                };
                if !found.contains_key(&resolved.display().to_string()) {
                    next.insert(resolved);
                }
            }
            found.insert(path.display().to_string(), content);
        }
        pending = next;
    }
    Ok(found)
}

/// One pass over the layers, top first, for `paths`.
fn read_paths(
    image: &Image,
    paths: &BTreeSet<PathBuf>,
    cancel: &Cancel,
) -> Result<BTreeMap<PathBuf, FileContent>> {
    let mut found: BTreeMap<PathBuf, FileContent> = BTreeMap::new();
    let mut deleted: BTreeSet<PathBuf> = BTreeSet::new();
    for layer in image.layers().iter().rev() {
        if paths
            .iter()
            .all(|p| found.contains_key(p) || deleted.contains(p))
        {
            break;
        }
        let ((files, whiteouts), _) = layer.read_tar(cancel, |reader| scan(reader, paths))?;
        for (p, c) in files {
            if !deleted.contains(&p) {
                found.entry(p).or_insert(c);
            }
        }
        deleted.extend(whiteouts.into_iter().filter(|p| !found.contains_key(p)));
    }
    Ok(found)
}

/// The wanted files of one layer tar, and the wanted paths it deletes (whiteouts).
fn scan(
    reader: &mut dyn Read,
    paths: &BTreeSet<PathBuf>,
) -> io::Result<(BTreeMap<PathBuf, FileContent>, Vec<PathBuf>)> {
    let mut archive = tar::Archive::new(reader);
    let mut files = BTreeMap::new();
    let mut whiteouts = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = clean(&entry.path()?);
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(".wh."))
            && !name.starts_with(".wh.")
        {
            let target = path.with_file_name(name);
            if paths.contains(&target) {
                whiteouts.push(target);
            }
            continue;
        }
        if !paths.contains(&path) {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            if let Some(target) = entry.link_name()? {
                files.insert(path, FileContent::Symlink(target.into_owned()));
            }
        } else if kind.is_file() {
            let bytes = read_capped(&mut entry, MAX_FILE_SIZE, &path)?;
            files.insert(path, FileContent::File(bytes));
        }
    }
    Ok((files, whiteouts))
}

/// Reads all of `reader`, an entry at `path`, or fails when it holds more than `max` bytes.
pub fn read_capped(reader: &mut dyn Read, max: u64, path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "`/{}` is larger than the {max} bytes read of such a file",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// The glibc version of an image (`2.36`), from its `libc.so.6`, if it has one.
pub fn glibc_version(image: &Image, cancel: &Cancel) -> Result<Option<String>> {
    const CANDIDATES: &[&str] = &[
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        "lib/aarch64-linux-gnu/libc.so.6",
        "usr/lib/aarch64-linux-gnu/libc.so.6",
        "lib/powerpc64le-linux-gnu/libc.so.6",
        "lib/s390x-linux-gnu/libc.so.6",
        "lib64/libc.so.6",
        "usr/lib64/libc.so.6",
        "lib/libc.so.6",
        "usr/lib/libc.so.6",
    ];
    let files = read_files(image, CANDIDATES, cancel)?;
    for candidate in CANDIDATES {
        let mut current = candidate.to_string();
        for _ in 0..4 {
            match files.get(&current) {
                Some(FileContent::File(bytes)) => return Ok(version_in(bytes)),
                Some(FileContent::Symlink(target)) => {
                    // Old glibc: libc.so.6 -> libc-2.31.so
                    if let Some(v) = target
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix("libc-"))
                        .and_then(|n| n.strip_suffix(".so"))
                    {
                        return Ok(Some(v.to_string()));
                    }
                    let base = Path::new(&current)
                        .parent()
                        .unwrap_or(Path::new(""))
                        .join(target);
                    current = clean(if target.is_absolute() { target } else { &base })
                        .display()
                        .to_string();
                }
                None => break,
            }
        }
    }
    Ok(None)
}

/// The version in glibc's banner: "GNU C Library (...) stable release version 2.36."
fn version_in(bytes: &[u8]) -> Option<String> {
    let needle = b"release version ";
    let at = bytes.windows(needle.len()).position(|w| w == needle)? + needle.len();
    let version: String = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .map(|&b| b as char)
        .collect();
    let version = version.trim_end_matches('.').to_string();
    (!version.is_empty()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_banner() {
        assert_eq!(
            version_in(b"xx GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n")
                .as_deref(),
            Some("2.36")
        );
        assert_eq!(version_in(b"nothing here"), None);
    }
}
