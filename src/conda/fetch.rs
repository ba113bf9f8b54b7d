//! Fetching packages: each package's archive downloaded (or copied from a local channel) into
//! conda-docker's archive cache, checked against its record's sha256 (or md5) and size before it
//! appears there, and never extracted; a package that rattler's package cache (pixi's, or an
//! earlier conda-docker's) already holds extracted is read there in place instead.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rattler_cache::package_cache::{CacheKey, PackageCache};
use rattler_conda_types::RepoDataRecord;
use reqwest::Response;
use sha2::Digest as _;
use url::Url;

use super::archive::{PackageArchive, stream_cap};
use super::channel::Sources;
use super::contents::PathKind;
use super::contents::{ContentsCache, PackageContents};
use super::package_files::{PackageDir, PackageFiles};
use super::{Error, Result};
use crate::atomic::AtomicFile;
use crate::http::{Download, Exchange, Fault, Meter, Outcome, Retries, Sink, Size, Timeouts};
use crate::reporter::Reporter;
use crate::spool::Keep;

/// How many packages are downloaded at once.
const CONCURRENT_DOWNLOADS: usize = 8;

/// How many packages read for their contents keep their files for their layers, and how many
/// bytes in all: a cold build then decompresses each archive once, while later ones download.
const RETAINED_SPOOLS: u64 = 512;
const RETAINED_BYTES: u64 = 4 << 30;

/// Where a package's files are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageSource {
    /// A directory it was extracted into (rattler's package cache), read in place.
    Extracted(PathBuf),
    /// Its verified archive in conda-docker's archive cache, read without extracting it.
    Archive(PathBuf),
}

/// Fetches packages into the archive cache.
#[derive(Clone)]
pub struct Fetcher {
    extracted: PackageCache,
    archives: PathBuf,
    tmp: PathBuf,
    client: reqwest_middleware::ClientWithMiddleware,
    timeouts: Timeouts,
    downloads: Arc<tokio::sync::Semaphore>,
    reporter: Arc<dyn Reporter>,
    downloaded: Arc<AtomicU64>,
    sources: Sources,
    retain: Arc<crate::spool::Budget>,
}

impl Fetcher {
    /// A fetcher into the archive cache `archives` (spools it needs go in `tmp`), reading
    /// packages already extracted in rattler's package cache below `cache_dir` (`pkgs/`) in
    /// place, fetching each other package from where `sources` says its channel is.
    pub fn new(
        cache_dir: &Path,
        archives: &Path,
        tmp: &Path,
        client: reqwest_middleware::ClientWithMiddleware,
        reporter: Arc<dyn Reporter>,
        sources: Sources,
    ) -> Self {
        Self {
            extracted: PackageCache::new(cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR)),
            archives: archives.to_path_buf(),
            tmp: tmp.to_path_buf(),
            client,
            timeouts: Timeouts::default(),
            downloads: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS)),
            reporter,
            downloaded: Arc::default(),
            sources,
            retain: Arc::new(crate::spool::Budget::new(RETAINED_SPOOLS, RETAINED_BYTES)),
        }
    }

    /// The same fetcher with `timeouts` for its downloads.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The same fetcher reading (and, with [`Self::fetch_extracted`], extracting) packages in
    /// the conda `pkgs` directory `pkgs_dir` instead of rattler's cache.
    pub fn with_package_dir(mut self, pkgs_dir: &Path) -> Self {
        self.extracted = PackageCache::new(pkgs_dir);
        self
    }

    /// `record`'s package extracted in the package directory (for the seed's API, which hands
    /// out package directories): read there when it is there, else its archive fetched and
    /// verified as [`Self::fetch`] does, then extracted there by rattler.
    pub async fn fetch_extracted(&self, record: &RepoDataRecord) -> Result<PathBuf> {
        let archive = match self.fetch(record).await? {
            PackageSource::Extracted(dir) => return Ok(dir),
            PackageSource::Archive(path) => path,
        };
        let meta = self
            .extracted
            .get_or_fetch_from_path(&archive, Some(&record.package_record), None)
            .await
            .map_err(|source| Error::Fetch {
                package: record.identifier.to_string(),
                url: record.url.to_string(),
                source,
            })?;
        Ok(meta.path().to_path_buf())
    }

    /// Where spools of archives being read go.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Holds rattler's lock on its package cache (as its installer does) until dropped: another
    /// process then neither re-extracts nor removes a package directory being read.
    pub async fn lock(&self) -> Result<rattler_cache::package_cache::CacheGlobalLock> {
        self.extracted
            .acquire_global_lock()
            .await
            .map_err(|source| Error::CacheLock {
                path: self
                    .extracted
                    .layers()
                    .first()
                    .map(|l| l.path().to_path_buf())
                    .unwrap_or_default(),
                source,
            })
    }

    /// Where `record`'s package is read from: its extracted directory when rattler's cache
    /// holds it (checked by rattler against the record's sha256), else its archive, fetched
    /// and verified when the archive cache lacks it (or holds it damaged).
    pub async fn fetch(&self, record: &RepoDataRecord) -> Result<PackageSource> {
        if let Some(dir) = self.extracted_dir(record).await {
            return Ok(PackageSource::Extracted(dir));
        }
        let path = self.archive_path(record);
        if path.is_file() {
            let (path2, record2) = (path.clone(), record.clone());
            let check = tokio::task::spawn_blocking(move || verify_file(&path2, &record2)).await;
            match check {
                Ok(Ok(())) => {
                    crate::atomic::touch(&path);
                    return Ok(PackageSource::Archive(path));
                }
                _ => {
                    self.reporter.warning(&format!(
                        "the cached archive `{}` is damaged; fetching it again",
                        path.display()
                    ));
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let _permit = self.downloads.acquire().await;
        self.download(record, &path).await?;
        Ok(PackageSource::Archive(path))
    }

    /// Whether a local cache holds `record`'s package (its archive, or extracted), so that
    /// fetching it downloads nothing.
    pub async fn holds(&self, record: &RepoDataRecord) -> bool {
        self.archive_path(record).is_file() || self.extracted_dir(record).await.is_some()
    }

    /// The package's directory in rattler's cache, when it is there and valid.
    async fn extracted_dir(&self, record: &RepoDataRecord) -> Option<PathBuf> {
        let layer = self.extracted.layers().first()?;
        let key = CacheKey::from(&record.package_record);
        let meta = layer.try_validate(&key).await.ok()?;
        meta.path().is_dir().then(|| meta.path().to_path_buf())
    }

    /// Where the archive cache keeps `record`'s archive: by its sha256 (or md5), with its
    /// archive's extension.
    fn archive_path(&self, record: &RepoDataRecord) -> PathBuf {
        let ext = if record.identifier.to_string().ends_with(".tar.bz2")
            || record.url.path().ends_with(".tar.bz2")
        {
            ".tar.bz2"
        } else {
            ".conda"
        };
        let key = ContentsCache::key(record).unwrap_or_else(|| {
            format!(
                "url-{}",
                hex::encode(sha2::Sha256::digest(record.url.as_str()))
            )
        });
        self.archives.join(format!("{key}{ext}"))
    }

    /// Downloads (or copies) `record`'s archive to `path`, verified first.
    async fn download(&self, record: &RepoDataRecord, path: &Path) -> Result<()> {
        let url = self.sources.fetch_url(&record.url);
        let io = |e| Error::io("writing to the archive cache", path)(e);
        let mut sink = Hashing::new(Some(path), record).map_err(io)?;
        if url.scheme() == "file" {
            let from = url.to_file_path().map_err(|()| Error::Channel {
                channel: url.to_string(),
                reason: "not a local file path".into(),
            })?;
            sink.copy_from(&from)
                .map_err(Error::io("reading the package", &from))?;
        } else {
            self.get(&url, record, &mut sink).await?;
        }
        sink.check(record, &url)?;
        match sink.file {
            Some(file) => file.commit_to(path).map_err(io),
            None => Ok(()),
        }
    }

    /// GETs `url` into `sink`, retried by the one HTTP policy.
    async fn get(&self, url: &Url, record: &RepoDataRecord, sink: &mut Hashing) -> Result<()> {
        let package = record.identifier.to_string();
        let host = url.host_str().unwrap_or_default().to_string();
        let mut retries = Retries::new("channel", &host, self.timeouts, &*self.reporter);
        let size = match record.package_record.size {
            Some(n) => Size::Exactly(n),
            None => Size::Any,
        };
        let (reporter, total) = (self.reporter.clone(), self.downloaded.clone());
        let last = AtomicU64::new(0);
        let progress = move |held: u64| {
            let before = last.swap(held, Ordering::Relaxed);
            let now = if held >= before {
                total.fetch_add(held - before, Ordering::Relaxed) + (held - before)
            } else {
                total.fetch_sub(before - held, Ordering::Relaxed) - (before - held)
            };
            reporter.bytes_downloaded(now);
        };
        let how = Download {
            request: &format!("GET {url}"),
            size,
            resume: true,
            timeouts: self.timeouts,
            progress: &progress,
        };
        let get = Get {
            client: &self.client,
            url,
            package: &package,
            timeouts: self.timeouts,
        };
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| Error::Download {
            package: package.clone(),
            url: url.to_string(),
            source,
        };
        match crate::http::download(&get, sink, &how, &mut retries).await? {
            Outcome::Complete(_) => Ok(()),
            Outcome::Refused(response) => Err(failed(
                format!("the channel answered {}", response.status()).into(),
            )),
            Outcome::Failed {
                request,
                attempts,
                fault,
            } => Err(failed(
                format!("{request}: {fault} (after {attempts} attempts)").into(),
            )),
        }
    }

    /// What `record`'s package holds: from `contents` when read before, else fetched and read
    /// (and kept there); when it was fetched for this, with where it is and, if the budget
    /// allowed, its files as that one read kept them.
    pub async fn contents(
        &self,
        record: &RepoDataRecord,
        contents: &ContentsCache,
    ) -> Result<(Arc<PackageContents>, Option<Fetched>)> {
        let key = ContentsCache::key(record);
        if let Some(found) = key.as_deref().and_then(|k| contents.get(k)) {
            return Ok((Arc::new(found), None));
        }
        let source = self.fetch(record).await?;
        let (record2, source2, tmp) = (record.clone(), source.clone(), self.tmp.clone());
        let budget = self.retain.clone();
        let read = tokio::task::spawn_blocking(move || match &source2 {
            PackageSource::Archive(path) => {
                let archive = archive_at(path)?;
                PackageContents::read_archive_keeping(
                    &archive,
                    &record2,
                    Some(&budget),
                    &tmp,
                    &|| false,
                )
            }
            extracted => Ok((read_contents(extracted, &record2, &tmp)?, None)),
        })
        .await
        .map_err(|e| Error::io("reading package", record.identifier.to_string())(e.into()))?;
        let (read, files) = read?;
        if let Some(k) = key {
            contents.put(&k, &read)?;
        }
        self.reporter
            .package_installed(record.package_record.name.as_normalized());
        Ok((Arc::new(read), Some(Fetched { source, files })))
    }
}

/// A package fetched: where it is, and its files if a read kept them.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Where it is.
    pub source: PackageSource,
    /// Its files, kept by the read of its contents.
    pub files: Option<PackageFiles>,
}

/// The archive at `path`, known by its name.
fn archive_at(path: &Path) -> Result<PackageArchive> {
    PackageArchive::at(path).ok_or_else(|| {
        Error::io("reading", path)(std::io::Error::other("not a .conda or .tar.bz2"))
    })
}

/// What the package at `source` holds.
pub fn read_contents(
    source: &PackageSource,
    record: &RepoDataRecord,
    tmp: &Path,
) -> Result<PackageContents> {
    match source {
        PackageSource::Extracted(dir) => PackageContents::read(dir, record),
        PackageSource::Archive(path) => {
            PackageContents::read_archive(&archive_at(path)?, record, tmp, &|| false)
        }
    }
}

impl PackageSource {
    /// The files of the package at this source that its layer needs (`contents` says which
    /// and how large): an extracted directory opened, or the archive's payload read once
    /// into a spool in `tmp` (every listed file kept, no more of each than `contents` says).
    pub fn files_for(
        &self,
        contents: &PackageContents,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> std::io::Result<PackageFiles> {
        match self {
            Self::Extracted(dir) => Ok(PackageFiles::Extracted(Arc::new(PackageDir::open(dir)?))),
            Self::Archive(path) => {
                let archive = PackageArchive::at(path).ok_or_else(|| {
                    std::io::Error::other(format!("`{}` is no .conda or .tar.bz2", path.display()))
                })?;
                let sizes: std::collections::HashMap<&str, u64> = contents
                    .paths
                    .iter()
                    .filter(|p| p.kind == PathKind::File)
                    .map(|p| (p.path.as_str(), p.size))
                    .collect();
                let keep = |rel: &str| sizes.get(rel).map_or(Keep::Nothing, |&n| Keep::Upto(n));
                let cap = stream_cap(contents.file_bytes(), contents.paths.len());
                let payload =
                    archive.payload(&keep, (cap, crate::spool::MEMORY_CAP), tmp, cancelled)?;
                Ok(PackageFiles::Archive {
                    info: None,
                    payload: Arc::new(payload),
                })
            }
        }
    }
}

/// Checks the archive at `path` against `record` (its hash and size).
fn verify_file(path: &Path, record: &RepoDataRecord) -> Result<()> {
    let mut sink =
        Hashing::new(None, record).map_err(Error::io("reading the archive cache", path))?;
    sink.copy_from(path)
        .map_err(Error::io("reading the archive cache", path))?;
    let url = Url::from_file_path(path).unwrap_or_else(|()| record.url.clone());
    sink.check(record, &url)
}

/// An archive being written (or only read, with no file), hashed and counted as it goes: by
/// sha256, and by md5 only for a record that has no sha256.
struct Hashing {
    file: Option<AtomicFile>,
    sha256: sha2::Sha256,
    md5: Option<rattler_digest::Md5>,
    len: u64,
}

impl Hashing {
    /// Hashes what `record` is checked by, writing it to `path` when given.
    fn new(path: Option<&Path>, record: &RepoDataRecord) -> std::io::Result<Self> {
        let p = &record.package_record;
        Ok(Self {
            file: path.map(AtomicFile::new).transpose()?,
            sha256: Default::default(),
            md5: (p.sha256.is_none() && p.md5.is_some()).then(Default::default),
            len: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(f) = &mut self.file {
            f.write_all(bytes)?;
        }
        self.sha256.update(bytes);
        if let Some(md5) = &mut self.md5 {
            md5.update(bytes);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Takes the regular file at `from` (a FIFO or device is not opened).
    fn copy_from(&mut self, from: &Path) -> std::io::Result<()> {
        let meta = std::fs::metadata(from)?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut file = std::fs::File::open(from)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buf[..n])?;
        }
    }

    /// Checks what was written against `record` (fetched from `url`).
    fn check(&mut self, record: &RepoDataRecord, url: &Url) -> Result<()> {
        let p = &record.package_record;
        let mismatch = |what: String| Error::Mismatch {
            package: record.identifier.to_string(),
            url: url.to_string(),
            what,
        };
        if let Some(size) = p.size
            && size != self.len
        {
            return Err(mismatch(format!(
                "does not match its record: {} bytes where the record says {size}",
                self.len
            )));
        }
        let sha256 = self.sha256.clone().finalize();
        if let Some(expected) = p.sha256 {
            if sha256[..] != expected[..] {
                return Err(mismatch(format!(
                    "does not match its record (hash mismatch): sha256 {} where the record says {}",
                    hex::encode(sha256),
                    hex::encode(expected)
                )));
            }
        } else if let (Some(expected), Some(md5)) = (p.md5, &self.md5) {
            let md5 = md5.clone().finalize();
            if md5[..] != expected[..] {
                return Err(mismatch(format!(
                    "does not match its record (hash mismatch): md5 {} where the record says {}",
                    hex::encode(md5),
                    hex::encode(expected)
                )));
            }
        }
        Ok(())
    }
}

impl Sink<Error> for Hashing {
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let written = self.write(bytes);
        written.map_err(|e| {
            let temp = self.file.as_ref().map(|f| f.temp_path().to_path_buf());
            Error::io("writing to the archive cache", temp.unwrap_or_default())(e)
        })
    }
    fn restart(&mut self) -> Result<()> {
        use std::io::Seek;
        if let Some(f) = &self.file {
            let reset = f.file().set_len(0).and_then(|()| {
                let mut file = f.file();
                file.seek(std::io::SeekFrom::Start(0)).map(|_| ())
            });
            reset.map_err(Error::io("writing to the archive cache", f.temp_path()))?;
        }
        self.sha256 = Default::default();
        if let Some(md5) = &mut self.md5 {
            *md5 = Default::default();
        }
        self.len = 0;
        Ok(())
    }
    fn received(&self) -> u64 {
        self.len
    }
}

/// One GET of a package archive, as [`crate::http::download`] makes it.
struct Get<'a> {
    client: &'a reqwest_middleware::ClientWithMiddleware,
    url: &'a Url,
    package: &'a str,
    timeouts: Timeouts,
}

impl Exchange for Get<'_> {
    type Error = Error;

    async fn send(
        &self,
        range: Option<&str>,
        meter: &Meter,
    ) -> Result<std::result::Result<Response, Fault>> {
        let mut request = self.client.get(self.url.clone());
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        crate::http::attempt(request.send(), meter, self.timeouts, |e| match e {
            reqwest_middleware::Error::Reqwest(e) => Ok(Fault::Http(e)),
            e => Err(Error::Download {
                package: self.package.to_string(),
                url: self.url.to_string(),
                source: e.into(),
            }),
        })
        .await
    }

    fn too_large(&self, url: &Url, limit: u64) -> Error {
        Error::Mismatch {
            package: self.package.to_string(),
            url: url.to_string(),
            what: format!("is longer than the {limit} bytes its record says"),
        }
    }
}
