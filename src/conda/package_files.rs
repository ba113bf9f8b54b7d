//! The one reader for the files of a conda package, extracted or not: every path a package
//! names is checked ([`check_package_path`]) and read through [`crate::beneath`] (beneath an
//! extracted package's directory, following no symlink) or from its archive, read once into
//! [`crate::spool`] ([`super::archive`]). Both answer the same questions with the same checks,
//! so what a package may hold does not depend on how it reached the build.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::beneath::{Dir as PackageDir, Kind, Stat};
use crate::spool::TarFiles;

/// A package's files: an extracted directory, or an archive's `info/` and payload.
#[derive(Debug, Clone)]
pub enum PackageFiles {
    /// A directory the package was extracted into (rattler's or conda's package cache).
    Extracted(Arc<PackageDir>),
    /// An archive, read without extracting it.
    Archive {
        /// Its `info/` files, when they were read.
        info: Option<Arc<TarFiles>>,
        /// The files it installs.
        payload: Arc<TarFiles>,
    },
}

/// The part of an archive that holds `rel`.
fn part<'a>(info: &'a Option<Arc<TarFiles>>, payload: &'a TarFiles, rel: &str) -> &'a TarFiles {
    match info {
        Some(info) if rel.starts_with("info/") => info,
        _ => payload,
    }
}

impl PackageFiles {
    /// What `rel` is, without following it.
    pub fn stat(&self, rel: &str) -> io::Result<Stat> {
        match self {
            Self::Extracted(dir) => dir.stat(rel),
            Self::Archive { info, payload } => part(info, payload, rel).stat(rel),
        }
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &str) -> io::Result<PathBuf> {
        match self {
            Self::Extracted(dir) => dir.read_link(rel),
            Self::Archive { info, payload } => part(info, payload, rel).read_link(rel),
        }
    }

    /// The regular file `rel`'s bytes and their length.
    pub fn open_file(&self, rel: &str) -> io::Result<(u64, Box<dyn Read + Send>)> {
        match self {
            Self::Extracted(dir) => {
                let file = dir.open_file(rel)?;
                Ok((file.metadata()?.len(), Box::new(file)))
            }
            Self::Archive { info, payload } => part(info, payload, rel).open_file(rel),
        }
    }

    /// The bytes of the regular file `rel`, refused when larger than `cap`.
    pub fn read_small(&self, rel: &str, cap: u64) -> io::Result<Vec<u8>> {
        match self {
            Self::Extracted(dir) => dir.read_small(rel, cap),
            Self::Archive { info, payload } => part(info, payload, rel).read_small(rel, cap),
        }
    }
}

/// Why a path a package names cannot be used, or `None` when it can.
///
/// A path must be relative, valid UTF-8 (it is a `&str`), free of NUL, of empty, `.` and `..`
/// components, and of names starting with `.wh.` (an OCI whiteout in an image layer).
pub fn check_package_path(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the path is empty");
    }
    if path.starts_with('/') {
        return Some("the path is absolute");
    }
    if path.contains('\0') {
        return Some("the path holds a NUL byte");
    }
    for component in path.split('/') {
        match component {
            "" => return Some("the path has an empty component"),
            "." => return Some("the path has a `.` component"),
            ".." => return Some("the path leaves the prefix with `..`"),
            c if c.starts_with(".wh.") => {
                return Some("a name starting with `.wh.` would be a whiteout in the image");
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for ok in [
            "bin/x",
            "lib/python3.11/site-packages/a.py",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(check_package_path(ok), None, "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./x",
            "a/",
            "x\0y",
            ".wh.x",
            "lib/.wh..wh..opq",
        ] {
            assert!(check_package_path(bad).is_some(), "{bad:?}");
        }
    }
}
