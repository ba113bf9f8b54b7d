//! Fetching packages into rattler's package cache (downloaded, sha256-checked and extracted
//! there) and reading what each holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rattler_cache::package_cache::{CacheReporter, PackageCache};
use rattler_conda_types::RepoDataRecord;
use rattler_networking::LazyClient;
use rattler_networking::retry_policies::default_retry_policy;

use super::channel::Sources;
use super::contents::{ContentsCache, PackageContents};
use super::{Error, Result};
use crate::reporter::Reporter;

/// How many packages are downloaded at once.
const CONCURRENT_DOWNLOADS: usize = 8;

/// Fetches packages into the package cache.
#[derive(Clone)]
pub struct Fetcher {
    cache: PackageCache,
    client: LazyClient,
    downloads: Arc<tokio::sync::Semaphore>,
    reporter: Arc<dyn Reporter>,
    downloaded: Arc<AtomicU64>,
    sources: Sources,
}

impl Fetcher {
    /// A fetcher into the package cache below `cache_dir` (`pkgs/`), fetching each package
    /// from where `sources` says its channel is.
    pub fn new(
        cache_dir: &Path,
        client: reqwest_middleware::ClientWithMiddleware,
        reporter: Arc<dyn Reporter>,
        sources: Sources,
    ) -> Self {
        let pkgs_dir = cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR);
        Self::in_package_dir(&pkgs_dir, client, reporter, sources)
    }

    /// A fetcher into the package directory `pkgs_dir` itself (a conda `pkgs` directory:
    /// one extracted directory per package), fetching as [`Self::new`] does.
    pub fn in_package_dir(
        pkgs_dir: &Path,
        client: reqwest_middleware::ClientWithMiddleware,
        reporter: Arc<dyn Reporter>,
        sources: Sources,
    ) -> Self {
        Self {
            cache: PackageCache::new(pkgs_dir),
            client: client.into(),
            downloads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS)),
            reporter,
            downloaded: Arc::default(),
            sources,
        }
    }

    /// Holds rattler's lock on the whole package cache (as its installer does) until dropped:
    /// another process then neither re-extracts nor removes a package directory being read.
    pub async fn lock(&self) -> Result<rattler_cache::package_cache::CacheGlobalLock> {
        self.cache
            .acquire_global_lock()
            .await
            .map_err(|source| Error::CacheLock {
                path: self
                    .cache
                    .layers()
                    .first()
                    .map(|l| l.path().to_path_buf())
                    .unwrap_or_default(),
                source,
            })
    }

    /// The extracted directory of `record`'s package, fetched and checked against the record's
    /// sha256 (or md5) when the cache lacks it.
    pub async fn fetch(&self, record: &RepoDataRecord) -> Result<PathBuf> {
        let url = self.sources.fetch_url(&record.url);
        let fail = |source| Error::Fetch {
            package: record.identifier.to_string(),
            url: url.to_string(),
            source,
        };
        let progress: Arc<dyn CacheReporter> = Arc::new(Progress {
            reporter: self.reporter.clone(),
            total: self.downloaded.clone(),
            this: AtomicU64::new(0),
        });
        let metadata = if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| Error::Channel {
                channel: url.to_string(),
                reason: "not a local file path".into(),
            })?;
            self.cache
                .get_or_fetch_from_path(&path, Some(&record.package_record), Some(progress))
                .await
                .map_err(fail)?
        } else {
            self.cache
                .get_or_fetch_from_url_with_retry(
                    &record.package_record,
                    url.clone(),
                    self.client.clone(),
                    default_retry_policy(),
                    Some(progress),
                    Some(self.downloads.clone()),
                )
                .await
                .map_err(fail)?
        };
        Ok(metadata.path().to_path_buf())
    }

    /// What `record`'s package holds: from `contents` when read before, else fetched and read
    /// (and kept there); with the extracted directory when it was fetched for this.
    pub async fn contents(
        &self,
        record: &RepoDataRecord,
        contents: &ContentsCache,
    ) -> Result<(Arc<PackageContents>, Option<PathBuf>)> {
        let key = ContentsCache::key(record);
        if let Some(found) = key.as_deref().and_then(|k| contents.get(k)) {
            return Ok((Arc::new(found), None));
        }
        let dir = self.fetch(record).await?;
        let record_for_read = record.clone();
        let dir_for_read = dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            PackageContents::read(&dir_for_read, &record_for_read)
        })
        .await
        .map_err(|e| Error::io("reading package", record.identifier.to_string())(e.into()))??;
        if let Some(k) = key {
            contents.put(&k, &read)?;
        }
        self.reporter
            .package_installed(record.package_record.name.as_normalized());
        Ok((Arc::new(read), Some(dir)))
    }
}

/// Adds one package's download progress to the build's total.
struct Progress {
    reporter: Arc<dyn Reporter>,
    total: Arc<AtomicU64>,
    this: AtomicU64,
}

impl CacheReporter for Progress {
    fn on_validate_start(&self) -> usize {
        0
    }
    fn on_validate_complete(&self, _: usize) {}
    fn on_download_start(&self) -> usize {
        0
    }
    fn on_download_progress(&self, _: usize, progress: u64, _: Option<u64>) {
        let before = self.this.swap(progress, Ordering::Relaxed);
        let total = self
            .total
            .fetch_add(progress.saturating_sub(before), Ordering::Relaxed)
            + progress.saturating_sub(before);
        self.reporter.bytes_downloaded(total);
    }
    fn on_download_completed(&self, _: usize) {}
}
