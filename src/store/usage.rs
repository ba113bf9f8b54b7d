//! What each bucket of the [`Store`] holds, and pruning it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Store;

/// One cache directory and what it holds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheUsage {
    /// What it is (`blobs`, `package contents`).
    pub name: &'static str,
    /// Where it is.
    pub path: PathBuf,
    /// How many files it holds.
    pub entries: u64,
    /// How many bytes they take.
    pub bytes: u64,
}

impl Store {
    /// What each bucket holds.
    pub fn usage(&self) -> std::io::Result<Vec<CacheUsage>> {
        self.buckets()
            .into_iter()
            .map(|(name, path)| {
                let (entries, bytes) = walk(&path, None)?;
                Ok(CacheUsage {
                    name,
                    path,
                    entries,
                    bytes,
                })
            })
            .collect()
    }

    /// Removes every cache file not used for `older_than` (everything when `None`), and returns
    /// the files and bytes removed. Files are removed one by one, each whole, so a concurrent
    /// build sees an entry or its absence, never part of one (a layer key whose blob is gone is
    /// a miss).
    ///
    /// It waits for running builds to end first (they hold the store's lock, shared), calling
    /// `waiting` once if it must, so it never removes an entry a build is using or writing.
    pub fn prune(
        &self,
        older_than: Option<Duration>,
        waiting: impl FnOnce(),
    ) -> std::io::Result<(u64, u64)> {
        let _lock = self.lock(true, waiting);
        let cutoff = older_than.map(|d| SystemTime::now() - d);
        let mut removed = (0, 0);
        for (_, path) in self.buckets() {
            let (n, b) = walk(&path, Some(cutoff))?;
            removed.0 += n;
            removed.1 += b;
        }
        Ok(removed)
    }
}

/// Counts the files below `dir`; with `remove`, deletes those last modified before the cutoff
/// (all when the cutoff is `None`) and counts only those.
fn walk(dir: &Path, remove: Option<Option<SystemTime>>) -> std::io::Result<(u64, u64)> {
    let mut total = (0, 0);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (n, b) = walk(&entry.path(), remove)?;
            total.0 += n;
            total.1 += b;
            continue;
        }
        let stale = match remove {
            None => true,
            Some(None) => true,
            Some(Some(cutoff)) => meta.modified().map(|m| m < cutoff).unwrap_or(false),
        };
        if !stale {
            continue;
        }
        if remove.is_some() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        total.0 += 1;
        total.1 += meta.len();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let dirs = store.buckets();
        std::fs::create_dir_all(dirs[0].1.join("blobs/sha256")).unwrap();
        std::fs::write(dirs[0].1.join("blobs/sha256/aa"), b"12345").unwrap();
        std::fs::create_dir_all(&dirs[1].1).unwrap();
        std::fs::write(dirs[1].1.join("x.json"), b"{}").unwrap();
        let u = store.usage().unwrap();
        assert_eq!((u[0].entries, u[0].bytes), (1, 5));
        assert_eq!((u[1].entries, u[1].bytes), (1, 2));
        assert_eq!(
            store.prune(Some(Duration::from_secs(3600)), || ()).unwrap(),
            (0, 0)
        );
        assert_eq!(store.prune(None, || ()).unwrap(), (2, 7));
        assert_eq!(store.usage().unwrap()[0].entries, 0);
    }
}
