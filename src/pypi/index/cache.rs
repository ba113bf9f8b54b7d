//! The wheel cache, `<cache>/pypi-v1/<sha256>.whl`: a wheel is downloaded (or copied from a
//! local path) through [`crate::atomic`] and checked against its sha256 before it appears
//! there under that name.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;

use super::client::Get;
use super::locations::{local_path, split_credentials};
use super::{DistFile, Error, Index, MAX_WHEEL};
use crate::atomic::AtomicFile;
use crate::http::Sink;

/// The wheel cache's directory under the cache directory `cache_dir`.
pub fn wheel_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(crate::store::WHEELS)
}

/// Where the wheel cache under `cache_dir` keeps the wheel whose sha256 is `sha256`.
pub fn cached_wheel(cache_dir: &Path, sha256: &str) -> PathBuf {
    wheel_dir(cache_dir).join(format!("{}.whl", sha256.to_ascii_lowercase()))
}

impl Index {
    /// The wheel `filename` at `url` (http(s) or `file://`) in the cache, downloaded (or copied)
    /// and checked against `sha256` first when it is not there yet: for resolved and for locked
    /// wheels alike; returns its path and sha256. A mismatch is [`Error::HashMismatch`] and
    /// caches nothing; without a `sha256` (an unhashed lock entry), it is fetched every time.
    pub async fn fetch_wheel(
        &self,
        url: &Url,
        sha256: Option<&str>,
        filename: &str,
    ) -> Result<(PathBuf, String), Error> {
        let (url, _) = split_credentials(url.clone());
        self.download(&url, sha256, filename).await
    }

    /// The listed wheel `file` in the cache (see [`Index::fetch_wheel`]) and its sha256: checked
    /// against the index's hash, or hashed as it is downloaded when the index gives none.
    pub async fn fetch_listed(&self, file: &DistFile) -> Result<(PathBuf, String), Error> {
        self.download(&file.url, file.sha256.as_deref(), &file.filename)
            .await
    }

    /// Downloads `url` into the cache as `<sha256>.whl`, checked against `expected` when given
    /// (else named by what it hashes to); returns the path and the sha256.
    pub(super) async fn download(
        &self,
        url: &Url,
        expected: Option<&str>,
        filename: &str,
    ) -> Result<(PathBuf, String), Error> {
        if let Some(expected) = expected {
            check_hex(expected, filename, url)?;
            let path = cached_wheel(&self.0.options.cache_dir, expected);
            if path.is_file() {
                crate::atomic::touch(&path);
                return Ok((path, expected.to_ascii_lowercase()));
            }
        }
        let mut sink = ToFile::new(&wheel_dir(&self.0.options.cache_dir))?;
        let what = format!("the wheel `{filename}`");
        if url.scheme() == "file" {
            sink.copy(&local_path(url)?)?;
        } else if self
            .get(Get::new(url, &what, MAX_WHEEL).resumed(), &mut sink)
            .await?
            .is_none()
        {
            return Err(Error::Status {
                url: url.to_string(),
                what,
                status: 404,
                hint: String::new(),
            });
        }
        sink.commit(expected, filename, url)
    }
}

/// A wheel on its way into the cache (`dir`), hashed as it is written.
struct ToFile {
    file: AtomicFile,
    hasher: Sha256,
    len: u64,
    dir: PathBuf,
}

impl ToFile {
    /// A temporary file in the cache directory `dir`, named by neither the URL nor the index.
    fn new(dir: &Path) -> Result<Self, Error> {
        let io = |what: &str| io(dir, what);
        std::fs::create_dir_all(dir).map_err(io("creating the wheel cache"))?;
        let file =
            AtomicFile::new(&dir.join("download.whl")).map_err(io("writing to the wheel cache"))?;
        Ok(Self {
            file,
            hasher: Sha256::new(),
            len: 0,
            dir: dir.to_path_buf(),
        })
    }

    /// Copies the local wheel at `path` in: a regular file (a FIFO or device is not opened).
    fn copy(&mut self, path: &Path) -> Result<(), Error> {
        let meta = std::fs::metadata(path).map_err(io(path, "reading a wheel"))?;
        if !meta.is_file() {
            let refused =
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io(path, "reading a wheel")(refused));
        }
        let mut from = std::fs::File::open(path).map_err(io(path, "reading a wheel"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = from.read(&mut buf).map_err(io(path, "reading a wheel"))?;
            if n == 0 {
                return Ok(());
            }
            self.append(&buf[..n])?;
        }
    }

    /// The wheel in the cache as `<sha256>.whl` once its sha256 is `expected` (when given);
    /// its path and sha256. A mismatch leaves nothing.
    fn commit(
        mut self,
        expected: Option<&str>,
        filename: &str,
        url: &Url,
    ) -> Result<(PathBuf, String), Error> {
        let found = hex::encode(self.hasher.finalize_reset());
        if let Some(expected) = expected
            && !found.eq_ignore_ascii_case(expected)
        {
            // A local file's hash is its owner's, not for messages.
            let found = if url.scheme() == "file" {
                "another (not shown for a local file)".into()
            } else {
                found
            };
            return Err(Error::HashMismatch {
                file: filename.to_string(),
                url: url.to_string(),
                expected: expected.to_string(),
                found,
            });
        }
        // The temporary file is renamed to its final name, not `download.whl`.
        let path = self.dir.join(format!("{found}.whl"));
        let io = |what| io(&path, what);
        self.file
            .file()
            .sync_all()
            .map_err(io("writing to the wheel cache"))?;
        persist_as(self.file, &path).map_err(io("writing to the wheel cache"))?;
        Ok((path, found))
    }

    fn written(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn emptied(&mut self) -> std::io::Result<()> {
        self.file.file().set_len(0)?;
        self.file.file().seek(std::io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }
}

impl Sink<Error> for ToFile {
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.written(bytes)
            .map_err(io(&self.dir, "writing to the wheel cache"))
    }
    fn restart(&mut self) -> Result<(), Error> {
        self.emptied()
            .map_err(io(&self.dir, "writing to the wheel cache"))
    }
    fn received(&self) -> u64 {
        self.len
    }
}

/// An [`Error::Io`] doing `what` to `path`.
fn io(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |source| Error::Io { path, what, source }
}

/// Renames the atomic temporary file to `path` (its directory), with the cache's mode.
fn persist_as(file: AtomicFile, path: &Path) -> std::io::Result<()> {
    file.commit_to(path)
}

/// Refuses `sha256` unless it is 64 hex digits: it names a file in the cache.
fn check_hex(sha256: &str, filename: &str, url: &Url) -> Result<(), Error> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::HashMismatch {
            file: filename.to_string(),
            url: url.to_string(),
            expected: format!("`{sha256}` (not a sha256)"),
            found: "nothing (not downloaded)".into(),
        })
    }
}
