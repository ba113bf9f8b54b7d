//! The one way conda-docker writes a file: a temporary file in the destination's directory,
//! filled, given an explicit mode, and renamed into place, so a reader sees all of it or nothing.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The mode of every file conda-docker writes: readable by all, whatever the umask.
pub const FILE_MODE: u32 = 0o644;

/// A file being written; it appears at its path only when [`AtomicFile::commit`]ted.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path` (its directory is created if missing).
    pub fn new(path: &Path) -> io::Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            temp: tempfile::NamedTempFile::new_in(dir)?,
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
        self.temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
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
}
