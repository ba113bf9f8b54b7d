//! The one reader for the files of an extracted conda package: every path a package names is
//! checked ([`check_package_path`]) and read through [`crate::beneath`] (beneath the package
//! directory, following no symlink).

pub use crate::beneath::{Dir as PackageDir, Kind, Stat};

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
