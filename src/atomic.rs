//! The one way conda-docker writes a file: a temporary file in the destination's directory,
//! filled, given an explicit mode, and renamed into place, so a reader sees all of it or nothing.
//!
//! Every temporary file or directory conda-docker makes is named
//! `.conda-docker-<pid>-<random>.tmp`, so one left by a killed process is recognised and removed
//! by the next run ([`remove_stale`]): when its process is gone, or when it is over a day old.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The mode of every file conda-docker writes: readable by all, whatever the umask.
pub const FILE_MODE: u32 = 0o644;
/// The mode of a file holding secrets (a stored login): its owner's only.
pub const SECRET_MODE: u32 = 0o600;

/// A file being written; it appears at its path only when [`AtomicFile::commit`]ted.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

/// The directory `path` is written in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    /// Starts writing `path` (its directory is created if missing).
    pub fn new(path: &Path) -> io::Result<Self> {
        let dir = parent_dir(path);
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            temp: temp_file_in(dir)?,
            path: path.to_path_buf(),
        })
    }

    /// The open temporary file, to write to.
    pub fn file(&self) -> &std::fs::File {
        self.temp.as_file()
    }

    /// The temporary file's path (for messages).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Sets the mode to [`FILE_MODE`] and moves the file into place, replacing what was there.
    pub fn commit(self) -> io::Result<()> {
        self.commit_with_mode(FILE_MODE)
    }

    /// Like [`AtomicFile::commit`], to `path` instead of the path given to [`AtomicFile::new`]
    /// (a name known only once the contents are, such as their hash); `path` must be in the
    /// same directory.
    pub fn commit_to(mut self, path: &Path) -> io::Result<()> {
        self.path = path.to_path_buf();
        self.commit_with_mode(FILE_MODE)
    }

    fn commit_with_mode(self, mode: u32) -> io::Result<()> {
        self.temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        self.temp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `path` atomically, with mode [`FILE_MODE`].
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::new(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Writes `bytes` to `path` atomically, readable by its owner only ([`SECRET_MODE`]): the mode
/// is set before the file appears, so the secret is never readable by others.
pub fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::new(path)?;
    file.write_all(bytes)?;
    file.commit_with_mode(SECRET_MODE)
}

/// How every temporary name of ours starts (then the pid, `-`, random characters, `.tmp`).
const TEMP_PREFIX: &str = ".conda-docker-";
const TEMP_SUFFIX: &str = ".tmp";
/// Temporaries older than this are removed even when their pid is alive (pids are reused).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

fn temp_builder() -> (String, tempfile::Builder<'static, 'static>) {
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.suffix(TEMP_SUFFIX);
    (prefix, builder)
}

/// A temporary file in `dir`, named as ours, removed when dropped.
pub fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let (prefix, mut builder) = temp_builder();
    builder.prefix(&prefix).tempfile_in(dir)
}

/// A temporary directory in `dir`, named as ours, removed when dropped.
pub fn temp_dir_in(dir: &Path) -> io::Result<tempfile::TempDir> {
    let (prefix, mut builder) = temp_builder();
    builder.prefix(&prefix).tempdir_in(dir)
}

/// True when `name` is one of our temporary names (a file being written, or left by a killed
/// process).
pub fn is_temp(name: &str) -> bool {
    temp_pid(name).is_some()
}

/// The pid in one of our temporary names, if `name` is one.
fn temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Removes our temporaries in `dir` left by processes that are gone (or over a day old);
/// returns how many. Other files are never touched; errors are ignored (this is tidying).
pub fn remove_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_pid(&name.to_string_lossy()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if alive && !old {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Sets a cache file's mtime to now (its last use, which `cache prune --older-than` goes by);
/// a failure only makes it look older.
/// A symlink is not followed and anything but a regular file is left as it is (without
/// blocking on a FIFO).
pub fn touch(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let Ok(f) = std::fs::File::options()
        .append(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    else {
        return;
    };
    if f.metadata().is_ok_and(|m| m.is_file()) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_and_world_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let pending = AtomicFile::new(&dir.path().join("never")).unwrap();
        drop(pending);
        assert!(!dir.path().join("never").exists());
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            1
        );
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // pid 0 never names a user process: its temporaries are stale.
        std::fs::write(d.join(".conda-docker-0-abc.tmp"), b"x").unwrap();
        std::fs::create_dir(d.join(".conda-docker-0-dir.tmp")).unwrap();
        std::fs::write(d.join(".conda-docker-0-dir.tmp/blob"), b"x").unwrap();
        std::fs::write(d.join("keep.tmp"), b"x").unwrap();
        std::fs::write(d.join(".conda-docker-notapid.tmp"), b"x").unwrap();
        let live = temp_file_in(d).unwrap();
        assert_eq!(remove_stale(d), 2);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let live_name = live
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(live_name.starts_with(&format!(".conda-docker-{}-", std::process::id())));
        let mut want = vec![
            ".conda-docker-notapid.tmp".to_string(),
            "keep.tmp".into(),
            live_name,
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
