//! The one way a directory's files are read: a directory opened once, and every path
//! opened beneath it without following any symlink (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, or a walk of `openat(O_NOFOLLOW)` where the kernel lacks it). Symlinks
//! are read as links, never followed; FIFOs and devices are refused. Extracted conda packages
//! ([`crate::conda::package_files`]) and host files put into layers ([`crate::image::host`])
//! are both read through it. Knows no conda and no OCI; nothing here writes.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

/// What a path in a directory is, read without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
    /// Anything else (FIFO, socket, device).
    Other,
}

/// The metadata of one path in a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// The inode, when other paths share it (a hard link).
    pub shared_inode: Option<u64>,
}

/// A directory, opened once; every read beneath it goes through it.
#[derive(Debug)]
pub struct Dir {
    dir: OwnedFd,
    path: PathBuf,
}

/// Remembers that `openat2` is unavailable (old kernel or a sandbox that refuses it).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn os(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// An error for a path that goes through a symlink or is of the wrong kind.
fn refused(e: io::Error, rel: &str) -> io::Error {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{rel}` is or goes through a symlink, which is never followed"),
        ),
        Some(code) if code == rustix::io::Errno::NOTDIR.raw_os_error() => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{rel}` goes through a symlink or a file where a directory should be"),
        ),
        Some(code) if code == rustix::io::Errno::XDEV.raw_os_error() => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{rel}` does not stay beneath the directory"),
        ),
        _ => e,
    }
}

impl Dir {
    /// Opens the directory at `path` (itself not followed if it is a symlink).
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(os)?;
        Ok(Self {
            dir,
            path: path.to_path_buf(),
        })
    }

    /// The directory on this machine, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` beneath the directory, following no symlink on the way or at the end.
    fn open_beneath(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                &self.dir,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(fd),
                Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(refused(os(e), rel)),
            }
        }
        // One component at a time, none followed.
        let mut parts = rel.split('/').peekable();
        let mut current: Option<OwnedFd> = None;
        while let Some(part) = parts.next() {
            let last = parts.peek().is_none();
            let step_flags = if last {
                flags
            } else {
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
            };
            let base = current.as_ref().unwrap_or(&self.dir);
            let next = rustix::fs::openat(base, part, step_flags, Mode::empty())
                .map_err(|e| refused(os(e), rel))?;
            current = Some(next);
        }
        current.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
    }

    /// The directory holding `rel` and `rel`'s last component.
    fn parent<'a>(&self, rel: &'a str) -> io::Result<(Option<OwnedFd>, &'a str)> {
        match rel.rsplit_once('/') {
            Some((dir, name)) => Ok((
                Some(self.open_beneath(dir, OFlags::PATH | OFlags::DIRECTORY)?),
                name,
            )),
            None => Ok((None, rel)),
        }
    }

    /// What `rel` is, without following it.
    pub fn stat(&self, rel: &str) -> io::Result<Stat> {
        let (parent, name) = self.parent(rel)?;
        let st = rustix::fs::statat(
            parent.as_ref().unwrap_or(&self.dir),
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| refused(os(e), rel))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            FileType::Directory => Kind::Dir,
            _ => Kind::Other,
        };
        Ok(Stat {
            kind,
            mode: st.st_mode & 0o7777,
            size: st.st_size.max(0) as u64,
            shared_inode: (kind == Kind::File && st.st_nlink > 1).then_some(st.st_ino),
        })
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &str) -> io::Result<PathBuf> {
        let (parent, name) = self.parent(rel)?;
        let target = rustix::fs::readlinkat(parent.as_ref().unwrap_or(&self.dir), name, Vec::new())
            .map_err(|e| refused(os(e), rel))?;
        let bytes = target.into_bytes();
        Ok(PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
        ))
    }

    /// Opens the regular file `rel` for reading.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        // O_NONBLOCK: opening a FIFO must not hang; it is refused below.
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let st = rustix::fs::fstat(&fd).map_err(os)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("`{rel}` is not a regular file"),
            ));
        }
        Ok(File::from(fd))
    }

    /// The bytes of the regular file `rel`, refused when larger than `cap`.
    pub fn read_small(&self, rel: &str, cap: u64) -> io::Result<Vec<u8>> {
        let file = self.open_file(rel)?;
        crate::capped::read_open(file, cap)
            .map_err(|e| io::Error::new(e.kind(), format!("`{rel}` {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        let pkg = root.path().join("pkg");
        std::fs::create_dir_all(pkg.join("lib")).unwrap();
        std::fs::write(pkg.join("lib/real"), b"real").unwrap();
        symlink(&outside, pkg.join("lib/out")).unwrap();
        symlink(outside.join("secret"), pkg.join("lib/secret")).unwrap();
        symlink("real", pkg.join("lib/rel")).unwrap();

        let dir = Dir::open(&pkg).unwrap();
        assert_eq!(dir.read_small("lib/real", 100).unwrap(), b"real");
        assert_eq!(dir.stat("lib/real").unwrap().kind, Kind::File);
        for through in ["lib/out/secret", "lib/secret", "lib/rel"] {
            let err = dir.open_file(through).unwrap_err();
            assert!(err.to_string().contains("symlink"), "{through}: {err}");
        }
        let err = dir.stat("lib/out/secret").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(dir.stat("lib/secret").unwrap().kind, Kind::Symlink);
        assert_eq!(dir.read_link("lib/rel").unwrap(), PathBuf::from("real"));
        assert!(dir.read_small("lib/real", 2).is_err(), "cap");

        // The component walk (no openat2) refuses the same.
        NO_OPENAT2.store(true, Ordering::Relaxed);
        for through in ["lib/out/secret", "lib/secret"] {
            assert!(dir.open_file(through).is_err(), "{through}");
        }
        assert_eq!(dir.read_small("lib/real", 100).unwrap(), b"real");
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let dir = Dir::open(root.path()).unwrap();
        assert!(dir.open_file("fifo").is_err());
        assert_eq!(dir.stat("fifo").unwrap().kind, Kind::Other);
    }
}
