//! The store: every cache conda-docker keeps, under one root, each a named bucket whose name
//! carries its format's version (bump it when what the bucket holds, or how it is read,
//! changes).
//!
//! The root is `--cache-dir DIR`, else `$XDG_CACHE_HOME/conda-docker` (`~/.cache/...`), taken
//! from an [`Env`](crate::env::Env), never from the process. Under it: the blob store
//! [`BLOBS`] (`oci-v1`: layer tars by diff_id, compressed blobs, pulled manifests, layer keys;
//! see [`blobs`]), [`CONTENTS`] (`contents-v3`: what each package holds, by sha256),
//! [`WHEELS`] (`pypi-v1`: PyPI wheels, by sha256) and [`INSTALLED_WHEELS`]
//! (`wheels-installed-v1`: what installing each gave). Conda packages themselves are in
//! rattler's package cache, shared with pixi, which conda-docker reads but never prunes.
//!
//! The image side knows the blob store only through [`crate::image::resolve::BlobStore`], which
//! [`BlobCache`] implements: the store depends on the image side, never the reverse.

pub mod blobs;
mod usage;
mod verify;

use std::path::{Path, PathBuf};

pub use blobs::{BlobCache, KeyedLayer};
pub use usage::CacheUsage;
pub use verify::{Damaged, Verified};

/// The blob store's bucket.
pub const BLOBS: &str = "oci-v1";
/// The package-contents bucket (`conda::contents::ContentsCache`).
pub const CONTENTS: &str = "contents-v3";
/// The conda package archive bucket (`<sha256-HEX>.conda`, `.tar.bz2`), verified on entry.
pub const ARCHIVES: &str = "pkgs-v1";
/// The PyPI wheel bucket (`<sha256>.whl`).
pub const WHEELS: &str = "pypi-v1";
/// What installing each PyPI wheel gave, by wheel and scheme.
pub const INSTALLED_WHEELS: &str = "wheels-installed-v1";

/// The store's lock file, in its root ([`Store::lock`]).
const LOCK: &str = ".conda-docker-store.lock";

/// The store's lock, held until dropped.
#[derive(Debug)]
pub struct StoreLock(#[allow(dead_code)] std::fs::File);

/// The root of conda-docker's caches, and the bucket directories under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store rooted at `root` (nothing is created until a bucket is written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store under `cache_dir` (as `--cache-dir` gives it), else under
    /// [`Store::default_root`].
    pub fn at(cache_dir: Option<&Path>, env: &crate::env::Env) -> Self {
        match cache_dir {
            Some(dir) => Self::new(dir),
            None => Self::new(Self::default_root(env)),
        }
    }

    /// The default root: `$XDG_CACHE_HOME/conda-docker` (or `~/.cache/conda-docker`).
    pub fn default_root(env: &crate::env::Env) -> PathBuf {
        env.cache_home().join("conda-docker")
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store ([`BLOBS`]).
    pub fn blobs(&self) -> BlobCache {
        BlobCache::new(self.root.join(BLOBS))
    }

    /// The package-contents cache's directory ([`CONTENTS`]).
    pub fn contents_dir(&self) -> PathBuf {
        self.root.join(CONTENTS)
    }

    /// The conda package archives' directory ([`ARCHIVES`]).
    pub fn archives_dir(&self) -> PathBuf {
        self.root.join(ARCHIVES)
    }

    /// Where spools of archives being read go (unlinked files, never seen by a listing).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.clone()
    }

    /// The PyPI wheel cache's directory ([`WHEELS`]).
    pub fn wheels_dir(&self) -> PathBuf {
        self.root.join(WHEELS)
    }

    /// The directory of what installing each wheel gave ([`INSTALLED_WHEELS`]).
    pub fn installed_wheels_dir(&self) -> PathBuf {
        self.root.join(INSTALLED_WHEELS)
    }

    /// Takes the store's lock, shared (a build, for as long as it runs) or `exclusive` (`cache
    /// prune`, which must not remove what a running build uses). `waiting` is called once when
    /// another holder makes this one wait. `None` when no lock can be taken (a read-only cache):
    /// the store is then used without one.
    pub fn lock(&self, exclusive: bool, waiting: impl FnOnce()) -> Option<StoreLock> {
        use rustix::fs::FlockOperation as Op;
        std::fs::create_dir_all(&self.root).ok()?;
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.root.join(LOCK))
            .ok()?;
        let (now, wait) = match exclusive {
            true => (Op::NonBlockingLockExclusive, Op::LockExclusive),
            false => (Op::NonBlockingLockShared, Op::LockShared),
        };
        if rustix::fs::flock(&file, now).is_err() {
            waiting();
            rustix::fs::flock(&file, wait).ok()?;
        }
        Some(StoreLock(file))
    }

    /// Every bucket, named as `cache info` shows it.
    pub fn buckets(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("blobs", self.root.join(BLOBS)),
            ("package contents", self.contents_dir()),
            ("package archives", self.archives_dir()),
            ("PyPI wheels", self.wheels_dir()),
            ("installed wheels", self.installed_wheels_dir()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_cache_dir_or_the_env_s_cache_home() {
        let env = crate::env::Env::new([("HOME", "/home/u")], "/");
        let store = Store::at(None, &env);
        assert_eq!(store.root(), Path::new("/home/u/.cache/conda-docker"));
        assert_eq!(
            store.blobs().dir(),
            Path::new("/home/u/.cache/conda-docker/oci-v1")
        );
        let env = env.with_var("XDG_CACHE_HOME", "/xdg");
        assert_eq!(Store::at(None, &env).root(), Path::new("/xdg/conda-docker"));
        let given = Store::at(Some(Path::new("/c")), &env);
        assert_eq!(given.root(), Path::new("/c"));
        let buckets: Vec<PathBuf> = given.buckets().into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            buckets,
            [
                "/c/oci-v1",
                "/c/contents-v3",
                "/c/pkgs-v1",
                "/c/pypi-v1",
                "/c/wheels-installed-v1"
            ]
            .map(PathBuf::from)
        );
    }
}
