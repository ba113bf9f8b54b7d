//! The PyPI side: wheels installed into the environment as pip installs them, and which PyPI
//! distributions the conda packages already provide.
//!
//! - [`wheel`]: reads a wheel (a zip) through checks as strict as the conda package reader's and
//!   lists the files the image gets ([`wheel::InstalledFile`]), with `RECORD` rewritten,
//!   `INSTALLER`, entry-point scripts and `.data/` mapped for a conda prefix; contents stream
//!   from the wheel when the layer is written.
//! - [`metadata`]: the email-style header blocks of `METADATA` and `WHEEL`.
//! - [`record`]: `RECORD` rows (CSV, `sha256=` urlsafe base64 hashes), read and written.
//! - [`scripts`]: `entry_points.txt`, the scripts pip writes for them and `#!python` rewriting.
//! - [`provides`]: the distributions conda packages provide, from `purls` and `*.dist-info`.
//! - [`requirements`]: what an environment asks pip for (`pip:` lists, `-r` files).
//! - [`index`]: simple-index client (PEP 691/503, find-links) and the wheel cache.
//! - [`resolve`]: requirements resolved to wheels for a target with pubgrub.
//!
//! Knows no tar or OCI, like [`crate::conda`].

pub mod index;
pub mod metadata;
pub mod provides;
pub mod record;
pub mod requirements;
pub mod resolve;
pub mod scripts;
#[cfg(test)]
mod test_index;
pub mod wheel;

/// What can go wrong reading or installing a wheel; every variant names the wheel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The wheel is not a readable zip archive.
    #[error("wheel `{wheel}`: not a readable zip archive")]
    Zip {
        /// The wheel's file name.
        wheel: String,
        /// The cause.
        #[source]
        source: zip::result::ZipError,
    },
    /// The wheel could not be read.
    #[error("wheel `{wheel}`: reading `{path}`")]
    Io {
        /// The wheel's file name.
        wheel: String,
        /// The member (or the wheel's path on this machine) being read.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A member's path is not safe to install (absolute, `..`, `.wh.`, not UTF-8, ...).
    #[error(
        "wheel `{wheel}`: refusing `{path}`: {reason}; the wheel is not safe to put in an image"
    )]
    UnsafePath {
        /// The wheel's file name.
        wheel: String,
        /// The path as the wheel names it.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A member is a symlink, a device or anything else but a regular file or directory.
    #[error(
        "wheel `{wheel}`: refusing `{path}`: it is {kind}, and a wheel may hold regular files only"
    )]
    NotAFile {
        /// The wheel's file name.
        wheel: String,
        /// The member.
        path: String,
        /// `a symlink`, `a device`, ...
        kind: &'static str,
    },
    /// Two members (or a member and a generated file) would be installed at one path.
    #[error("wheel `{wheel}`: `{path}` would be installed twice (from `{first}` and `{second}`)")]
    DuplicatePath {
        /// The wheel's file name.
        wheel: String,
        /// The installed path, relative to the prefix.
        path: String,
        /// What put it there first.
        first: String,
        /// What would put it there again.
        second: String,
    },
    /// A member's bytes do not match what `RECORD` says of them.
    #[error("wheel `{wheel}`: `{path}`: RECORD says {expected}, the wheel holds {found}")]
    HashMismatch {
        /// The wheel's file name.
        wheel: String,
        /// The member.
        path: String,
        /// What RECORD says (`sha256=...` or `N bytes`).
        expected: String,
        /// What the member holds.
        found: String,
    },
    /// A member `RECORD` does not list with a hash.
    #[error(
        "wheel `{wheel}`: `{path}` is not in RECORD with a sha256 hash; refusing an unverifiable file"
    )]
    NotInRecord {
        /// The wheel's file name.
        wheel: String,
        /// The member.
        path: String,
    },
    /// The wheel is larger than the limits allow (a zip bomb, or a limit too low).
    #[error("wheel `{wheel}`: {what} exceeds the limit of {limit}")]
    TooLarge {
        /// The wheel's file name.
        wheel: String,
        /// What is too large (`N entries`, `N uncompressed bytes`, `RECORD`).
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The wheel's `.dist-info` or `METADATA` names another distribution or version than its
    /// file name.
    #[error("wheel `{wheel}`: its {place} says `{found}`, but the file name says `{expected}`")]
    NameMismatch {
        /// The wheel's file name.
        wheel: String,
        /// Where the other name was found (`.dist-info directory`, `METADATA`).
        place: &'static str,
        /// `name-version` from the file name.
        expected: String,
        /// `name-version` found there.
        found: String,
    },
    /// The wheel breaks the wheel format (bad file name, WHEEL, RECORD, entry points, ...).
    #[error("wheel `{wheel}`: `{path}`: {reason}")]
    Invalid {
        /// The wheel's file name.
        wheel: String,
        /// The member (or the file name) at fault.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The PyPI side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A distribution name normalised as PEP 503 says (`Foo.Bar_baz` -> `foo-bar-baz`).
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            in_run = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// True when two version strings are the same PEP 440 version (`1.0` and `1.0.0`), or, when
/// either does not parse, the same string.
pub fn same_version(a: &str, b: &str) -> bool {
    use std::str::FromStr;
    match (
        pep440_rs::Version::from_str(a),
        pep440_rs::Version::from_str(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The sha256 (hex) of the file at `path`, read in 256 KiB pieces.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize_name("MarkupSafe"), "markupsafe");
        assert_eq!(normalize_name("typing_extensions"), "typing-extensions");
        assert_eq!(normalize_name("a-_-b"), "a-b");
    }

    #[test]
    fn versions_compare_as_pep_440_says() {
        assert!(same_version("1.0", "1.0.0"));
        assert!(same_version("1.0.post1", "1.0-1"));
        assert!(!same_version("1.0", "1.1"));
    }
}
