//! Package archives read in place, never extracted: a `.conda` (a zip of `metadata.json`, one
//! `info-*.tar.zst` and one `pkg-*.tar.zst`, nothing else) or a `.tar.bz2`, decompressed as a
//! stream into [`crate::spool::TarFiles`], so that the checked reader
//! ([`super::package_files::PackageFiles`]) reads their files as it reads an extracted
//! package's. Truncated or corrupt streams are errors naming the archive.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::package_files::check_package_path;
use crate::spool::{Keep, Limits, TarFiles};

/// The most entries one archive may hold.
const MAX_ENTRIES: usize = 1_000_000;
/// The most bytes an archive's `info` may expand to.
const INFO_CAP: u64 = 512 << 20;
/// What a tar stream may hold beyond its files' declared bytes: a header and padding per
/// entry, and files no `paths.json` lists.
const PER_ENTRY: u64 = 1536;
const SLACK: u64 = 64 << 20;

/// The form of an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Conda,
    TarBz2,
}

/// One package archive on disk, its form known by its name.
#[derive(Clone, Debug)]
pub struct PackageArchive {
    path: PathBuf,
    form: Form,
}

/// An archive's error (the caller names the archive).
fn bad(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// The largest tar stream a package whose files declare `declared` bytes in `entries` entries
/// may have.
pub fn stream_cap(declared: u64, entries: usize) -> u64 {
    declared
        .saturating_add(PER_ENTRY.saturating_mul(entries as u64 + 2))
        .saturating_add(SLACK)
}

impl PackageArchive {
    /// The archive at `path`, if its name says `.conda` or `.tar.bz2`.
    pub fn at(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let form = if name.ends_with(".conda") {
            Form::Conda
        } else if name.ends_with(".tar.bz2") {
            Form::TarBz2
        } else {
            return None;
        };
        Some(Self {
            path: path.to_path_buf(),
            form,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files of its `info/` (those `keep` asks for kept), under [`INFO_CAP`].
    pub fn info(
        &self,
        keep: &dyn Fn(&str) -> Keep,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<TarFiles> {
        let limits = Limits {
            stream: INFO_CAP,
            entries: MAX_ENTRIES,
            memory: crate::spool::MEMORY_CAP,
        };
        let only_info = |n: &str| match n.starts_with("info/") {
            true => keep(n),
            false => Keep::Nothing,
        };
        match self.form {
            Form::Conda => self.read_member("info-", limits, keep, tmp, cancelled),
            Form::TarBz2 => {
                let limits = Limits {
                    stream: self.unsized_cap()?,
                    ..limits
                };
                self.read_bz2(limits, &only_info, tmp, cancelled)
            }
        }
    }

    /// The files it installs (with `info/` too, for a `.tar.bz2`), those `keep` asks for
    /// kept, the stream under `stream` bytes, the bytes
    /// kept in memory up to `memory` bytes, then in a temporary file.
    pub fn payload(
        &self,
        keep: &dyn Fn(&str) -> Keep,
        (stream, memory): (u64, usize),
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<TarFiles> {
        let limits = Limits {
            stream,
            entries: MAX_ENTRIES,
            memory,
        };
        match self.form {
            Form::Conda => self.read_member("pkg-", limits, keep, tmp, cancelled),
            Form::TarBz2 => {
                let keep_files = |n: &str| match n.starts_with("info/") {
                    true => Keep::Nothing,
                    false => keep(n),
                };
                self.read_bz2(limits, &keep_files, tmp, cancelled)
            }
        }
    }

    /// The most bytes its stream may hold when its files' sizes are not all declared (and a
    /// `.tar.bz2`'s before its `paths.json` is read): 4096 times the archive's bytes (zstd and
    /// bzip2 go past that only on runs of one byte, which no real package is).
    pub fn unsized_cap(&self) -> io::Result<u64> {
        let len = std::fs::metadata(&self.path)?.len();
        Ok(len.saturating_mul(4096).max(SLACK))
    }

    fn read_bz2(
        &self,
        limits: Limits,
        keep: &dyn Fn(&str) -> Keep,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<TarFiles> {
        let file = File::open(&self.path)?;
        let stream = Whole {
            inner: bzip2::read::MultiBzDecoder::new(BufReader::with_capacity(256 << 10, file)),
        };
        let what = format!("`{}`", self.path.display());
        read_tar(stream, &what, (limits, keep, tmp, cancelled)).map_err(bad)
    }

    /// Reads the `.conda`'s member whose name starts with `prefix` (its only one).
    fn read_member(
        &self,
        prefix: &str,
        limits: Limits,
        keep: &dyn Fn(&str) -> Keep,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> io::Result<TarFiles> {
        let file = BufReader::with_capacity(256 << 10, File::open(&self.path)?);
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a .conda: {e}")))?;
        let member = conda_member(&zip, prefix).map_err(bad)?;
        let reader = zip
            .by_name(&member)
            .map_err(|e| bad(format!("`{member}`: {e}")))?;
        let mut decoder = zstd::stream::read::Decoder::new(reader)?;
        decoder.window_log_max(27)?;
        let stream = Whole { inner: decoder };
        let what = format!("`{member}` of `{}`", self.path.display());
        read_tar(stream, &what, (limits, keep, tmp, cancelled))
            .map_err(|e| bad(format!("`{member}`: {e}")))
    }
}

/// How one tar stream is read: its bounds, what is kept, where a spool goes, and whether the
/// build was cancelled.
type ReadHow<'a> = (
    Limits,
    &'a dyn Fn(&str) -> Keep,
    &'a Path,
    &'a dyn Fn() -> bool,
);

/// Reads the package tar `stream` (named `what`) by the package path rules.
fn read_tar(stream: impl Read, what: &str, how: ReadHow<'_>) -> io::Result<TarFiles> {
    let (limits, keep, tmp, cancelled) = how;
    TarFiles::read(
        stream,
        what,
        limits,
        &check_package_path,
        keep,
        tmp,
        cancelled,
    )
}

/// The one member of a `.conda` whose name starts with `prefix`; an error for any member but
/// `metadata.json`, `info-*.tar.zst` and `pkg-*.tar.zst`, or for two of one kind.
fn conda_member<R: Read + io::Seek>(
    zip: &zip::ZipArchive<R>,
    prefix: &str,
) -> Result<String, String> {
    let mut found = None;
    let (mut infos, mut pkgs) = (0, 0);
    for name in zip.file_names() {
        let name = name.map_err(|e| format!("a member's name: {e}"))?;
        let inner =
            |p: &str| name.starts_with(p) && name.ends_with(".tar.zst") && !name.contains('/');
        if inner("info-") {
            infos += 1;
        } else if inner("pkg-") {
            pkgs += 1;
        } else if name != "metadata.json" {
            return Err(format!("it holds `{name}`, which a .conda does not"));
        }
        if name.starts_with(prefix) {
            found = Some(name.to_string());
        }
    }
    if infos != 1 || pkgs != 1 {
        return Err(format!(
            "it holds {infos} info-*.tar.zst and {pkgs} pkg-*.tar.zst where a .conda holds one of each"
        ));
    }
    found.ok_or_else(|| format!("it has no {prefix}*.tar.zst"))
}

/// A decompressing reader that must end where its compressed stream ends: a stream cut short
/// is an error, never a silent end of the tar.
struct Whole<R> {
    inner: R,
}

impl<R: Read> Read for Whole<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the compressed stream is damaged or cut short: {e}"),
            )
        })
    }
}
