//! The caches conda-docker keeps, what they hold and how they are pruned.
//!
//! Four live side by side under one root (`--cache-dir DIR`, else `~/.cache/conda-docker`):
//! the blob store `oci-v1` (layer tars by diff_id, compressed blobs, pulled manifests, layer
//! keys), `contents-v2` (what each package holds, by sha256), `pypi-v1` (PyPI wheels, by
//! sha256) and `wheels-installed-v1` (what installing each gave). Conda packages themselves are
//! in rattler's package cache, shared with pixi, which conda-docker reads but never prunes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::transport::blob_cache::BlobCache;

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

/// The root of conda-docker's caches for `cache_dir` (as `--cache-dir` gives it).
pub fn root(cache_dir: Option<&Path>) -> PathBuf {
    let blobs = BlobCache::for_cache_dir(cache_dir);
    blobs
        .dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| blobs.dir().to_path_buf())
}

/// The root of the caches conda packages (`pkgs/`) and repodata are kept in for `cache_dir`
/// (as `--cache-dir` gives it): `cache_dir` itself, else rattler's shared cache (as pixi uses).
pub fn conda_root(cache_dir: Option<&Path>) -> crate::conda::Result<PathBuf> {
    match cache_dir {
        Some(d) => Ok(d.to_path_buf()),
        None => rattler_cache::default_cache_dir()
            .map_err(|e| crate::conda::Error::CacheDir(e.to_string())),
    }
}

/// The package-contents cache's directory. Bump its version when `PackageContents` or how it
/// is read changes.
pub fn contents_dir(cache_dir: Option<&Path>) -> PathBuf {
    root(cache_dir).join("contents-v2")
}

/// What installing each PyPI wheel gave (`build::pypi::InstalledCache`), by wheel and scheme.
pub fn installed_wheels_dir(cache_dir: Option<&Path>) -> PathBuf {
    root(cache_dir).join("wheels-installed-v1")
}

/// The directories conda-docker's caches use for `cache_dir` (as `--cache-dir` gives it).
pub fn cache_dirs(cache_dir: Option<&Path>) -> Vec<(&'static str, PathBuf)> {
    vec![
        (
            "blobs",
            BlobCache::for_cache_dir(cache_dir).dir().to_path_buf(),
        ),
        ("package contents", contents_dir(cache_dir)),
        (
            "PyPI wheels",
            crate::pypi::index::wheel_dir(&root(cache_dir)),
        ),
        ("installed wheels", installed_wheels_dir(cache_dir)),
    ]
}

/// What each cache holds.
pub fn usage(cache_dir: Option<&Path>) -> std::io::Result<Vec<CacheUsage>> {
    cache_dirs(cache_dir)
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
/// the files and bytes removed. Files are removed one by one, each whole, so a concurrent build
/// sees an entry or its absence, never part of one (a layer key whose blob is gone is a miss).
pub fn prune(
    cache_dir: Option<&Path>,
    older_than: Option<Duration>,
) -> std::io::Result<(u64, u64)> {
    let cutoff = older_than.map(|d| SystemTime::now() - d);
    let mut removed = (0, 0);
    for (_, path) in cache_dirs(cache_dir) {
        let (n, b) = walk(&path, Some(cutoff))?;
        removed.0 += n;
        removed.1 += b;
    }
    Ok(removed)
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
        let dirs = cache_dirs(Some(dir.path()));
        std::fs::create_dir_all(dirs[0].1.join("blobs/sha256")).unwrap();
        std::fs::write(dirs[0].1.join("blobs/sha256/aa"), b"12345").unwrap();
        std::fs::create_dir_all(&dirs[1].1).unwrap();
        std::fs::write(dirs[1].1.join("x.json"), b"{}").unwrap();
        let u = usage(Some(dir.path())).unwrap();
        assert_eq!((u[0].entries, u[0].bytes), (1, 5));
        assert_eq!((u[1].entries, u[1].bytes), (1, 2));
        assert_eq!(
            prune(Some(dir.path()), Some(Duration::from_secs(3600))).unwrap(),
            (0, 0)
        );
        assert_eq!(prune(Some(dir.path()), None).unwrap(), (2, 7));
        assert_eq!(usage(Some(dir.path())).unwrap()[0].entries, 0);
    }
}
