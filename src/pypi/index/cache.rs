//! The wheel cache, `<cache>/pypi-v1/<sha256>.whl`: a wheel is downloaded (or copied from a
//! local path) through [`crate::atomic`] and checked against its sha256 before it appears
//! there under that name.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;

use super::client::Body;
use super::locations::{local_path, split_credentials};
use super::{DistFile, Error, Index, MAX_WHEEL};
use crate::atomic::AtomicFile;

/// The wheel cache's directory under the cache directory `cache_dir`.
pub fn wheel_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("pypi-v1")
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
        let dir = wheel_dir(&self.0.options.cache_dir);
        if let Some(expected) = expected {
            check_hex(expected, filename, url)?;
            let path = cached_wheel(&self.0.options.cache_dir, expected);
            if path.is_file() {
                crate::atomic::touch(&path);
                return Ok((path, expected.to_ascii_lowercase()));
            }
        }
        let io = |path: &Path, what: &str| {
            let path = path.to_path_buf();
            let what = what.to_string();
            move |source| Error::Io { path, what, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir, "creating the wheel cache"))?;
        // The temporary file is named by neither the URL nor the index: only `dir` holds it.
        let temp_path = dir.join("download.whl");
        let file = AtomicFile::new(&temp_path).map_err(io(&dir, "writing to the wheel cache"))?;
        let mut sink = ToFile {
            file,
            hasher: Sha256::new(),
            len: 0,
        };
        let what = format!("the wheel `{filename}`");
        if url.scheme() == "file" {
            let path = local_path(url)?;
            let mut from = std::fs::File::open(&path).map_err(io(&path, "reading a wheel"))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = from.read(&mut buf).map_err(io(&path, "reading a wheel"))?;
                if n == 0 {
                    break;
                }
                sink.append(&buf[..n])
                    .map_err(io(&dir, "writing to the wheel cache"))?;
            }
        } else if self
            .get(url, None, MAX_WHEEL, &what, &mut sink)
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
        let found = hex::encode(sink.hasher.finalize_reset());
        if let Some(expected) = expected
            && !found.eq_ignore_ascii_case(expected)
        {
            return Err(Error::HashMismatch {
                file: filename.to_string(),
                url: url.to_string(),
                expected: expected.to_string(),
                found,
            });
        }
        // The temporary file is renamed to its final name, not `temp_path`.
        let path = dir.join(format!("{found}.whl"));
        sink.file
            .file()
            .sync_all()
            .map_err(io(&path, "writing to the wheel cache"))?;
        let temp = sink.file;
        persist_as(temp, &path).map_err(io(&path, "writing to the wheel cache"))?;
        Ok((path, found))
    }
}

/// A wheel on its way into the cache, hashed as it is written.
struct ToFile {
    file: AtomicFile,
    hasher: Sha256,
    len: u64,
}

impl Body for ToFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.file.file().set_len(0)?;
        self.file.file().seek(std::io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
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
