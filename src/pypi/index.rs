//! A client of Python package indexes: the simple repository API (PEP 691 JSON, PEP 503 HTML
//! as the fallback), `--find-links` locations (a flat directory of wheels, or a page of links)
//! and the wheel cache (`<cache>/pypi-v1/<sha256>.whl`).
//!
//! Several indexes are read as pip reads them: `index_url` (PyPI unless given) and then every
//! `extra_index_urls` entry, all **merged**: a project's files are the union of what every
//! index lists, with no index preferred (a file name listed twice is taken from the first). As
//! with pip, a name published on an extra index and on PyPI is therefore served by whichever
//! has the better version: use `--index-url` alone for a private index that must win.
//!
//! HTTP goes through reqwest with rustls on ring and the registry client's retry policy,
//! [`crate::http`]: an attempt fails after [`Timeouts::timeout`] of silence (connecting,
//! waiting, mid-body) or when a body crawls under the low-speed limit; a failure that may pass
//! (a connection error, 429, 5xx, silence, a crawl) is tried again 4 times since the last
//! progress, 0.5 s, 1 s, 2 s and 4 s apart or as long as `Retry-After` asks (at most 60 s),
//! within the timeout, each retry told to [`IndexOptions::reporter`]. A failed TLS handshake
//! or certificate is not tried again.
//!
//! Credentials: the `user:password@` of an index URL (sent to that host only, for its pages
//! and files), else a `~/.netrc` (or `$NETRC`) `machine` entry for the host. No keyring.
//!
//! Bounded: a project page is read up to [`MAX_PAGE`], a `.metadata` file up to
//! [`MAX_METADATA`]; wheels stream to the cache through [`crate::atomic`], verified against
//! their sha256 before they appear there.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use url::Url;

use super::normalize_name;
use super::wheel::{self, Limits};
use crate::atomic::AtomicFile;
use crate::error_chain;
use crate::http::{
    Fault, Meter, Retries, Timeouts, is_certificate_error, is_transient_status, retry_after,
};
use crate::reporter::{NoReporter, Reporter};

/// The index used when none is given.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// The largest project page read (64 MiB: PyPI's largest JSON pages are a few MiB).
pub const MAX_PAGE: u64 = 64 << 20;

/// The largest `.metadata` file (PEP 658) read.
pub const MAX_METADATA: u64 = 16 << 20;

/// The largest wheel downloaded (streamed to disk, never held in memory).
pub const MAX_WHEEL: u64 = 16 << 30;

/// What a project page is asked for in: PEP 691 JSON first, then HTML (PEP 503).
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
                      application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// What can go wrong talking to an index or filling the wheel cache; each names the URL and
/// what was being fetched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be set up (a CA file that does not read).
    #[error("setting up HTTP for the package indexes: {0}")]
    Setup(String),
    /// An index option that is not a URL or directory.
    #[error("`{location}` is not an index URL or a directory: {reason}")]
    Location {
        /// As given.
        location: String,
        /// Why.
        reason: String,
    },
    /// The index could not be reached, or stopped answering.
    #[error("{what}: cannot reach `{url}` ({attempts} attempt(s)): {message}")]
    Unreachable {
        /// The URL (without credentials).
        url: String,
        /// What was fetched (`the project page of \`click\``).
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The cause, as one line.
        message: String,
        /// The cause: the last attempt's failure.
        #[source]
        source: Box<Fault>,
    },
    /// The index answered with a failure.
    #[error("{what}: `{url}` answered {status}{hint}")]
    Status {
        /// The URL (without credentials).
        url: String,
        /// What was fetched.
        what: String,
        /// The status.
        status: u16,
        /// What to do about it (credentials for 401/403), or empty.
        hint: String,
    },
    /// A page, metadata file or wheel is larger than its cap.
    #[error("{what}: `{url}` sent more than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// What was fetched.
        what: String,
        /// The cap.
        limit: u64,
    },
    /// A project page that is neither PEP 691 JSON nor PEP 503 HTML.
    #[error("{what}: `{url}`: {reason}")]
    Page {
        /// The URL.
        url: String,
        /// What was fetched.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A file whose sha256 is not the one the index (or lock) gives; nothing was cached.
    #[error("`{file}` from `{url}`: its sha256 is {found}, but {expected} was expected")]
    HashMismatch {
        /// The file name (a wheel, or `<wheel>.metadata`).
        file: String,
        /// Where it came from.
        url: String,
        /// The sha256 given by the index or lock.
        expected: String,
        /// The sha256 of what was received.
        found: String,
    },
    /// A local file or the cache could not be read or written.
    #[error("`{}`: {what}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The `.netrc` file could not be read.
    #[error("reading the netrc file `{}`: {reason}", path.display())]
    Netrc {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A wheel that cannot be read (for its `METADATA`).
    #[error(transparent)]
    Wheel(#[from] super::Error),
}

/// How the client talks HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// How long an index may stay silent, and how slow a transfer may be (as for registries).
    pub timeouts: Timeouts,
    /// PEM files of CA certificates trusted besides the system's.
    pub ca_certificates: Vec<PathBuf>,
    /// Accept TLS certificates that do not verify (`--insecure`).
    pub insecure: bool,
}

/// Where packages are found, as pip's options name them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    /// `--index-url`; [`DEFAULT_INDEX`] when `None`.
    pub index_url: Option<String>,
    /// `--extra-index-url`s, searched after the index, in order (see the module's
    /// documentation).
    pub extra_index_urls: Vec<String>,
    /// `--find-links`: directories of wheels, or URLs of pages of links.
    pub find_links: Vec<String>,
    /// `--no-index`: only `find_links`.
    pub no_index: bool,
}

impl Locations {
    /// The locations given by flags or variables: find-links directories made absolute
    /// against `dir` (the current one), URLs as they are.
    pub fn given(
        index_url: Option<String>,
        extra_index_urls: Vec<String>,
        find_links: &[String],
        dir: &Path,
    ) -> Self {
        Self {
            index_url,
            extra_index_urls,
            find_links: find_links
                .iter()
                .map(|l| super::requirements::location(l, dir))
                .collect(),
            no_index: false,
        }
    }

    /// These locations over `under` (a requirements file's), as uv merges them: an index URL
    /// given here wins, extra indexes and find-links are both kept (these first), and either
    /// `--no-index` holds.
    pub fn over(&self, under: &Locations) -> Locations {
        let mut extra = self.extra_index_urls.clone();
        let mut links = self.find_links.clone();
        for e in &under.extra_index_urls {
            if !extra.contains(e) {
                extra.push(e.clone());
            }
        }
        for l in &under.find_links {
            if !links.contains(l) {
                links.push(l.clone());
            }
        }
        Locations {
            index_url: self.index_url.clone().or_else(|| under.index_url.clone()),
            extra_index_urls: extra,
            find_links: links,
            no_index: self.no_index || under.no_index,
        }
    }
}

/// How an index client is set up: where to look, where to cache and how to talk HTTP.
#[derive(Clone)]
pub struct IndexOptions {
    /// Where packages are found.
    pub locations: Locations,
    /// The cache directory; wheels go to its `pypi-v1/`.
    pub cache_dir: PathBuf,
    /// HTTP settings.
    pub http: HttpOptions,
    /// Hears every retry ([`Reporter::retrying`]); by default, nobody.
    pub reporter: Arc<dyn Reporter>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            locations: Locations::default(),
            cache_dir: PathBuf::new(),
            http: HttpOptions::default(),
            reporter: Arc::new(NoReporter),
        }
    }
}

impl std::fmt::Debug for IndexOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexOptions")
            .field("locations", &self.locations)
            .field("cache_dir", &self.cache_dir)
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

/// A `user:password` pair for HTTP basic auth.
#[derive(Clone, PartialEq, Eq)]
struct Basic {
    user: String,
    password: Option<String>,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Basic({}:***)", self.user)
    }
}

/// One place files are listed.
#[derive(Clone, Debug)]
enum Source {
    /// A simple index: its base URL (ending in `/`, without credentials) and credentials.
    Simple { base: Url, auth: Option<Basic> },
    /// A flat directory of files.
    Directory(PathBuf),
    /// A page of links (`--find-links URL`).
    Links { page: Url, auth: Option<Basic> },
}

impl Source {
    fn name(&self) -> String {
        match self {
            Self::Simple { base, .. } => base.to_string(),
            Self::Directory(dir) => dir.display().to_string(),
            Self::Links { page, .. } => page.to_string(),
        }
    }
}

/// A project's file as an index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistFile {
    /// The file name (`click-8.1.7-py3-none-any.whl`, `foo-1.0.tar.gz`).
    pub filename: String,
    /// Where to download it (without credentials or fragment).
    pub url: Url,
    /// Its sha256 (hex), when the index gives one.
    pub sha256: Option<String>,
    /// `requires-python`, when given.
    pub requires_python: Option<String>,
    /// Yanked (PEP 592).
    pub yanked: bool,
    /// PEP 658/714: the index serves `<url>.metadata`; `Some(hash)` with its sha256 if given.
    pub metadata: Option<Option<String>>,
    /// The index or location that lists it, for messages.
    pub index: String,
}

/// A project's files across every source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Project {
    /// The normalised name.
    pub name: String,
    /// The files, in the order the sources list them (first source first).
    pub files: Vec<DistFile>,
    /// The sources searched, for messages.
    pub searched: Vec<String>,
}

struct Inner {
    http: reqwest::Client,
    sources: Vec<Source>,
    netrc: Option<rattler_networking::authentication_storage::backends::netrc::NetRcStorage>,
    options: IndexOptions,
    pages: Mutex<HashMap<String, Arc<Project>>>,
}

/// A set of package sources with one HTTP client and a page cache; cheap to clone.
#[derive(Clone)]
pub struct Index(Arc<Inner>);

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("sources", &self.0.sources)
            .finish_non_exhaustive()
    }
}

/// `url` without its `user:password@` part, and that part.
fn split_credentials(mut url: Url) -> (Url, Option<Basic>) {
    let auth = (!url.username().is_empty()).then(|| Basic {
        user: percent_decode(url.username()),
        password: url.password().map(percent_decode),
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    (url, auth)
}

/// The wheel cache's directory under the cache directory `cache_dir`.
pub fn wheel_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join(crate::store::WHEELS)
}

/// Where the wheel cache under `cache_dir` keeps the wheel whose sha256 is `sha256`.
pub fn cached_wheel(cache_dir: &Path, sha256: &str) -> PathBuf {
    wheel_dir(cache_dir).join(format!("{}.whl", sha256.to_ascii_lowercase()))
}

/// `s` with its `%XX` escapes decoded (a URL's file name, as it is on disk).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL `location` names, with a trailing `/`.
fn parse_base(location: &str) -> Result<Url, Error> {
    let with_slash = if location.ends_with('/') {
        location.to_string()
    } else {
        format!("{location}/")
    };
    let url = Url::parse(&with_slash).map_err(|e| Error::Location {
        location: location.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https" | "file") {
        return Err(Error::Location {
            location: location.to_string(),
            reason: format!("the scheme `{}` is not http, https or file", url.scheme()),
        });
    }
    Ok(url)
}

impl Index {
    /// An index client for `options` (reads `~/.netrc` or `$NETRC` once, here).
    pub fn new(options: &IndexOptions) -> Result<Self, Error> {
        crate::install_tls_provider();
        // No read timeout: the watchdog of each attempt (`Meter::watch`) fails silent or
        // crawling ones.
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("conda-docker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.http.timeouts.timeout)
            .tls_danger_accept_invalid_certs(options.http.insecure);
        for file in &options.http.ca_certificates {
            let pem = std::fs::read(file).map_err(|e| {
                Error::Setup(format!("reading the CA file `{}`: {e}", file.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Setup(format!(
                    "`{}` is not a PEM certificate: {e}",
                    file.display()
                ))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Setup(format!("cannot set up HTTP: {e}")))?;
        let mut sources = Vec::new();
        let locations = &options.locations;
        if !locations.no_index {
            let index = locations.index_url.as_deref().unwrap_or(DEFAULT_INDEX);
            for location in
                std::iter::once(index).chain(locations.extra_index_urls.iter().map(|s| s.as_str()))
            {
                let (base, auth) = split_credentials(parse_base(location)?);
                sources.push(Source::Simple { base, auth });
            }
        }
        for location in &locations.find_links {
            if location.contains("://") && !location.starts_with("file://") {
                let page = Url::parse(location).map_err(|e| Error::Location {
                    location: location.clone(),
                    reason: e.to_string(),
                })?;
                let (page, auth) = split_credentials(page);
                sources.push(Source::Links { page, auth });
            } else {
                let path = match location.strip_prefix("file://") {
                    Some(p) => PathBuf::from(percent_decode(p)),
                    None => PathBuf::from(location),
                };
                sources.push(Source::Directory(path));
            }
        }
        use rattler_networking::authentication_storage::backends::netrc::NetRcStorage;
        let netrc = match NetRcStorage::from_env() {
            Ok(n) => Some(n),
            Err((path, e)) => {
                return Err(Error::Netrc {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        Ok(Self(Arc::new(Inner {
            http,
            sources,
            netrc,
            options: options.clone(),
            pages: Mutex::new(HashMap::new()),
        })))
    }

    /// The options this index was made with.
    pub fn options(&self) -> &IndexOptions {
        &self.0.options
    }

    /// The sources searched, in order (index URLs, then find-links), for messages.
    pub fn sources(&self) -> Vec<String> {
        self.0.sources.iter().map(Source::name).collect()
    }

    /// The credentials for a request to `url`: an index URL's own for its host, else netrc's.
    fn credentials(&self, url: &Url) -> Option<Basic> {
        let same_host = |base: &Url| {
            base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        };
        for source in &self.0.sources {
            if let Source::Simple {
                base,
                auth: Some(auth),
            }
            | Source::Links {
                page: base,
                auth: Some(auth),
            } = source
                && same_host(base)
            {
                return Some(auth.clone());
            }
        }
        let host = url.host_str()?;
        use rattler_networking::Authentication;
        match self.0.netrc.as_ref()?.get_password(host) {
            Ok(Some(Authentication::BasicHTTP { username, password })) => Some(Basic {
                user: username,
                password: Some(password),
            }),
            _ => None,
        }
    }

    /// The files of project `name` (any spelling) across every source, fetched once and kept.
    pub async fn project(&self, name: &str) -> Result<Arc<Project>, Error> {
        let name = normalize_name(name);
        if let Some(p) = self.lock_pages().get(&name) {
            return Ok(p.clone());
        }
        let mut project = Project {
            name: name.clone(),
            ..Project::default()
        };
        for source in &self.0.sources {
            project.searched.push(source.name());
            let files = match source {
                Source::Simple { base, .. } => self.simple_page(base, &name).await?,
                Source::Directory(dir) => directory_files(dir, &name)?,
                Source::Links { page, .. } => self.links_page(page, &name).await?,
            };
            for f in files {
                if !project.files.iter().any(|g| g.filename == f.filename) {
                    project.files.push(f);
                }
            }
        }
        let project = Arc::new(project);
        self.lock_pages().insert(name, project.clone());
        Ok(project)
    }

    fn lock_pages(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Project>>> {
        self.0.pages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A project's page on the simple index at `base`; no files when the index has no such
    /// project (404).
    async fn simple_page(&self, base: &Url, name: &str) -> Result<Vec<DistFile>, Error> {
        let what = format!("the project page of `{name}`");
        let url = base
            .join(&format!("{name}/"))
            .map_err(|e| Error::Location {
                location: base.to_string(),
                reason: e.to_string(),
            })?;
        if url.scheme() == "file" {
            return self.file_page(&url, &what, name);
        }
        let mut body = Memory::default();
        let Some(answer) = self
            .get(&url, Some(ACCEPT), MAX_PAGE, &what, &mut body)
            .await?
        else {
            return Ok(Vec::new());
        };
        parse_page(
            &answer.url,
            answer.content_type.as_deref(),
            &body.0,
            base.as_ref(),
        )
        .map_err(|reason| Error::Page {
            url: url.to_string(),
            what,
            reason,
        })
    }

    /// A `file://` simple index: `<base>/<name>/index.html` (or `index.json`).
    fn file_page(&self, url: &Url, what: &str, _name: &str) -> Result<Vec<DistFile>, Error> {
        let dir = url.to_file_path().map_err(|()| Error::Location {
            location: url.to_string(),
            reason: "not a local path".into(),
        })?;
        for (file, kind) in [
            ("index.json", "application/vnd.pypi.simple.v1+json"),
            ("index.html", "text/html"),
        ] {
            let path = dir.join(file);
            match crate::capped::read_file(&path, MAX_PAGE) {
                Ok(bytes) => {
                    let page = Url::from_file_path(&path).map_err(|()| Error::Location {
                        location: path.display().to_string(),
                        reason: "not an absolute path".into(),
                    })?;
                    return parse_page(&page, Some(kind), &bytes, url.as_ref()).map_err(|reason| {
                        Error::Page {
                            url: page.to_string(),
                            what: what.to_string(),
                            reason,
                        }
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Io {
                        path,
                        what: format!("reading {what}"),
                        source,
                    });
                }
            }
        }
        Ok(Vec::new())
    }

    /// The files of `name` on a `--find-links` page of links.
    async fn links_page(&self, page: &Url, name: &str) -> Result<Vec<DistFile>, Error> {
        let what = format!("the find-links page (for `{name}`)");
        let mut body = Memory::default();
        let Some(answer) = self
            .get(page, Some("text/html"), MAX_PAGE, &what, &mut body)
            .await?
        else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8_lossy(&body.0);
        Ok(parse_html(&answer.url, &text, page.as_ref())
            .into_iter()
            .filter(|f| file_project(&f.filename).as_deref() == Some(name))
            .collect())
    }

    /// The `METADATA` of `file` (a wheel of `project`): its PEP 658 `.metadata` when the index
    /// offers one, else read from the wheel (downloaded to the cache, or read in place for a
    /// local file).
    pub async fn metadata(&self, file: &DistFile) -> Result<String, Error> {
        if file.url.scheme() == "file" {
            let path = local_path(&file.url)?;
            return Ok(wheel::metadata(&path, &file.filename, &Limits::default())?);
        }
        if let Some(hash) = &file.metadata {
            let url =
                Url::parse(&format!("{}.metadata", file.url)).map_err(|e| Error::Location {
                    location: file.url.to_string(),
                    reason: e.to_string(),
                })?;
            let what = format!("the metadata of `{}`", file.filename);
            let mut body = Memory::default();
            if self
                .get(&url, None, MAX_METADATA, &what, &mut body)
                .await?
                .is_some()
            {
                if let Some(expected) = hash {
                    let found = hex::encode(Sha256::digest(&body.0));
                    if !found.eq_ignore_ascii_case(expected) {
                        return Err(Error::HashMismatch {
                            file: format!("{}.metadata", file.filename),
                            url: url.to_string(),
                            expected: expected.clone(),
                            found,
                        });
                    }
                }
                return String::from_utf8(body.0).map_err(|_| Error::Page {
                    url: url.to_string(),
                    what,
                    reason: "the metadata is not UTF-8".into(),
                });
            }
        }
        let (path, _) = self
            .download(&file.url, file.sha256.as_deref(), &file.filename)
            .await?;
        Ok(wheel::metadata(&path, &file.filename, &Limits::default())?)
    }

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
    async fn download(
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

    /// GETs `url` into `body`, retrying what may pass (see [`crate::http`]). `Ok(None)` for
    /// 404 and 410 (the index has no such project or file); other failures are errors.
    async fn get(
        &self,
        url: &Url,
        accept: Option<&str>,
        cap: u64,
        what: &str,
        body: &mut dyn Body,
    ) -> Result<Option<Answer>, Error> {
        let auth = self.credentials(url);
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let request = format!("GET {url}");
        let options = &self.0.options;
        let mut retries = Retries::new("index", host, options.http.timeouts, &*options.reporter);
        loop {
            let attempt = Attempt {
                url,
                accept,
                auth: auth.as_ref(),
                cap,
                what,
            };
            let fault = match self.attempt(&attempt, body, &mut retries).await? {
                Ok(answer) => return Ok(answer),
                Err(fault) => fault,
            };
            if !retries.again(&request, &fault).await {
                return Err(attempt.failed(retries.attempts(), fault));
            }
        }
    }

    /// One attempt at `a`, watched by a [`Meter`]: `Ok(Err(fault))` for a failure that trying
    /// again may cure (`body` emptied for the next attempt).
    async fn attempt(
        &self,
        a: &Attempt<'_>,
        body: &mut dyn Body,
        retries: &mut Retries<'_>,
    ) -> Result<Result<Option<Answer>, Fault>, Error> {
        let timeouts = self.0.options.http.timeouts;
        let meter = Meter::new();
        let mut request = self.0.http.get(a.url.clone());
        if let Some(accept) = a.accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(auth) = a.auth {
            request = request.basic_auth(&auth.user, auth.password.as_ref());
        }
        let response = tokio::select! {
            r = request.send() => r,
            fault = meter.watch(timeouts) => return Ok(Err(fault)),
        };
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return Ok(Err(Fault::Http(e))),
        };
        meter.touch();
        let status = response.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Ok(Ok(None));
        }
        if is_transient_status(status) {
            return Ok(Err(Fault::Status {
                status,
                retry_after: retry_after(response.headers()),
                response: Box::new(response),
            }));
        }
        if !status.is_success() {
            let hint = if matches!(status.as_u16(), 401 | 403) {
                match a.auth {
                    Some(auth) => format!("; the credentials for `{}` were refused", auth.user),
                    None => "; give credentials in the index URL \
                             (`https://user:password@host/simple`) or in ~/.netrc"
                        .into(),
                }
            } else {
                String::new()
            };
            return Err(a.status(status, hint));
        }
        let answer = Answer {
            url: response.url().clone(),
            content_type: response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        let read = tokio::select! {
            r = read_body(&mut response, body, a.cap, &meter) => r,
            fault = meter.watch(timeouts) => Err(BodyError::Fault(fault)),
        };
        let cache = || wheel_dir(&self.0.options.cache_dir);
        match read {
            Ok(()) => Ok(Ok(Some(answer))),
            Err(BodyError::TooLarge) => Err(Error::TooLarge {
                url: a.url.to_string(),
                what: a.what.to_string(),
                limit: a.cap,
            }),
            Err(BodyError::Io(source)) => Err(Error::Io {
                path: cache(),
                what: format!("writing {}", a.what),
                source,
            }),
            Err(BodyError::Fault(fault)) => {
                if meter.bytes() >= retries.progress_bytes() {
                    retries.progressed();
                }
                body.restart().map_err(|source| Error::Io {
                    path: cache(),
                    what: format!("writing {}", a.what),
                    source,
                })?;
                Ok(Err(fault))
            }
        }
    }
}

/// What one GET asks for, and the errors it names.
struct Attempt<'a> {
    url: &'a Url,
    accept: Option<&'a str>,
    auth: Option<&'a Basic>,
    cap: u64,
    what: &'a str,
}

impl Attempt<'_> {
    /// The index answered `status`, with `hint` after it.
    fn status(&self, status: StatusCode, hint: String) -> Error {
        Error::Status {
            url: self.url.to_string(),
            what: self.what.to_string(),
            status: status.as_u16(),
            hint,
        }
    }

    /// The error once `fault` ended the retries after `attempts` attempts.
    fn failed(&self, attempts: u32, fault: Fault) -> Error {
        if let Fault::Status { status, .. } = fault {
            return self.status(status, format!(" ({attempts} attempt(s))"));
        }
        let mut message = error_chain(&fault);
        if is_certificate_error(&fault) {
            message.push_str(
                "; its TLS certificate is not trusted: give its CA certificate with PIP_CERT",
            );
        }
        Error::Unreachable {
            url: self.url.to_string(),
            what: self.what.to_string(),
            attempts,
            message,
            source: Box::new(fault),
        }
    }
}

/// Renames the atomic temporary file to `path` (its directory), with the cache's mode.
fn persist_as(file: AtomicFile, path: &Path) -> std::io::Result<()> {
    file.commit_to(path)
}

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

/// The path of a `file://` URL.
fn local_path(url: &Url) -> Result<PathBuf, Error> {
    url.to_file_path().map_err(|()| Error::Location {
        location: url.to_string(),
        reason: "not a local path".into(),
    })
}

/// What answered a GET.
struct Answer {
    /// The URL after redirects (relative links are relative to it).
    url: Url,
    content_type: Option<String>,
}

/// Where a body goes.
trait Body: Send {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn restart(&mut self) -> std::io::Result<()>;
    fn len(&self) -> u64;
}

#[derive(Default)]
struct Memory(Vec<u8>);

impl Body for Memory {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.0.clear();
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

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

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Io(std::io::Error),
    Fault(Fault),
}

/// Reads the body of `response` into `body`, up to `cap` bytes, counted on `meter`.
async fn read_body(
    response: &mut reqwest::Response,
    body: &mut dyn Body,
    cap: u64,
    meter: &Meter,
) -> Result<(), BodyError> {
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(BodyError::TooLarge);
    }
    meter.set_moving(true);
    loop {
        let chunk = match response.chunk().await {
            Err(e) => return Err(BodyError::Fault(Fault::Http(e))),
            Ok(None) => return Ok(()),
            Ok(Some(chunk)) => chunk,
        };
        meter.moved(chunk.len());
        if body.len() + chunk.len() as u64 > cap {
            return Err(BodyError::TooLarge);
        }
        body.append(&chunk).map_err(BodyError::Io)?;
    }
}

/// The normalised project of a file name: a wheel's first part, an sdist's name before its
/// version (`foo_bar-1.0.tar.gz` -> `foo-bar`).
pub fn file_project(filename: &str) -> Option<String> {
    if filename.ends_with(".whl") {
        return wheel::WheelName::parse(filename)
            .ok()
            .map(|w| normalize_name(&w.name));
    }
    let stem = sdist_stem(filename)?;
    // The version starts after the last `-` followed by a digit.
    let at = stem
        .char_indices()
        .filter(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
        .map(|(i, _)| i)
        .next_back()?;
    Some(normalize_name(&stem[..at]))
}

/// The `name-version` of an sdist's file name, or `None` for other files.
pub fn sdist_stem(filename: &str) -> Option<&str> {
    [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))
}

/// The wheels and sdists of project `name` in directory `dir` (`--find-links DIR`), each
/// hashed as it is listed.
fn directory_files(dir: &Path, name: &str) -> Result<Vec<DistFile>, Error> {
    let io = |what: &str| {
        let what = what.to_string();
        let path = dir.to_path_buf();
        move |source| Error::Io { path, what, source }
    };
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io("listing a --find-links directory"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let Some(filename) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if file_project(&filename).as_deref() != Some(name) || !path.is_file() {
            continue;
        }
        let absolute =
            std::path::absolute(&path).map_err(io("listing a --find-links directory"))?;
        let url = Url::from_file_path(&absolute).map_err(|()| Error::Location {
            location: absolute.display().to_string(),
            reason: "not an absolute path".into(),
        })?;
        let sha256 = if filename.ends_with(".whl") {
            Some(file_sha256(&absolute)?)
        } else {
            None
        };
        files.push(DistFile {
            filename,
            url,
            sha256,
            requires_python: None,
            yanked: false,
            metadata: None,
            index: dir.display().to_string(),
        });
    }
    Ok(files)
}

fn file_sha256(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        what: "hashing a wheel".into(),
        source,
    };
    super::sha256_file(path).map_err(io)
}

/// A project page, JSON (PEP 691) or HTML (PEP 503) as its content type says, with links
/// relative to `page`.
fn parse_page(
    page: &Url,
    content_type: Option<&str>,
    body: &[u8],
    index: &str,
) -> Result<Vec<DistFile>, String> {
    let kind = content_type
        .unwrap_or("text/html")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if kind == "application/vnd.pypi.simple.v1+json" {
        parse_json(page, body, index)
    } else if kind.contains("html") {
        let text =
            std::str::from_utf8(body).map_err(|_| "the HTML page is not UTF-8".to_string())?;
        Ok(parse_html(page, text, index))
    } else {
        Err(format!(
            "a project page of type `{kind}`, neither PEP 691 JSON nor PEP 503 HTML"
        ))
    }
}

/// PEP 691 JSON.
fn parse_json(page: &Url, body: &[u8], index: &str) -> Result<Vec<DistFile>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        meta: Option<Meta>,
        files: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "api-version")]
        api_version: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        filename: String,
        url: String,
        #[serde(default)]
        hashes: HashMap<String, String>,
        #[serde(rename = "requires-python")]
        requires_python: Option<String>,
        #[serde(default)]
        yanked: serde_json::Value,
        #[serde(rename = "core-metadata")]
        core_metadata: Option<serde_json::Value>,
        #[serde(rename = "data-dist-info-metadata")]
        dist_info_metadata: Option<serde_json::Value>,
    }
    let parsed: Page =
        serde_json::from_slice(body).map_err(|e| format!("not PEP 691 JSON: {e}"))?;
    if let Some(version) = parsed.meta.and_then(|m| m.api_version)
        && !version.starts_with("1.")
    {
        return Err(format!(
            "PEP 691 api-version {version}; this client reads 1.x"
        ));
    }
    let mut out = Vec::with_capacity(parsed.files.len());
    for f in parsed.files {
        let Ok(url) = page.join(&f.url) else { continue };
        let (mut url, _) = split_credentials(url);
        url.set_fragment(None);
        let metadata = match f.core_metadata.or(f.dist_info_metadata) {
            Some(serde_json::Value::Bool(true)) => Some(None),
            Some(serde_json::Value::Object(hashes)) => Some(
                hashes
                    .get("sha256")
                    .and_then(|h| h.as_str())
                    .map(str::to_string),
            ),
            _ => None,
        };
        out.push(DistFile {
            filename: f.filename,
            url,
            sha256: f.hashes.get("sha256").cloned(),
            requires_python: f.requires_python.filter(|r| !r.trim().is_empty()),
            yanked: match f.yanked {
                serde_json::Value::Bool(b) => b,
                serde_json::Value::String(_) => true,
                _ => false,
            },
            metadata,
            index: index.to_string(),
        });
    }
    Ok(out)
}

/// PEP 503 HTML: every `<a href>`; the hash from the URL's `#sha256=` fragment.
fn parse_html(page: &Url, text: &str, index: &str) -> Vec<DistFile> {
    let mut out = Vec::new();
    for (attrs, inner) in anchors(text) {
        let Some(href) = attrs
            .iter()
            .find(|(k, _)| k == "href")
            .and_then(|(_, v)| v.clone())
        else {
            continue;
        };
        let Ok(url) = page.join(&href) else { continue };
        let (mut url, _) = split_credentials(url);
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(str::to_string);
        url.set_fragment(None);
        let from_url = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .unwrap_or_default();
        let inner = unescape(inner.trim());
        let filename = if inner.ends_with(".whl") || sdist_stem(&inner).is_some() {
            inner
        } else {
            from_url
        };
        if filename.is_empty() {
            continue;
        }
        let attr = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let metadata = match attr("data-core-metadata").or_else(|| attr("data-dist-info-metadata"))
        {
            Some(Some(v)) if v.eq_ignore_ascii_case("true") => Some(None),
            Some(Some(v)) if v.starts_with("sha256=") => {
                Some(Some(v["sha256=".len()..].to_string()))
            }
            Some(Some(_)) => Some(None),
            Some(None) => Some(None),
            None => None,
        };
        out.push(DistFile {
            filename,
            url,
            sha256,
            requires_python: attr("data-requires-python")
                .flatten()
                .filter(|r| !r.trim().is_empty()),
            yanked: attr("data-yanked").is_some(),
            metadata,
            index: index.to_string(),
        });
    }
    out
}

/// An element's attributes: lower-cased names, unescaped values (`None` when bare).
type Attributes = Vec<(String, Option<String>)>;

/// The `<a ...>text</a>` elements of `html`: attributes (lower-cased names, unescaped values;
/// `None` for a bare attribute) and the raw text.
fn anchors(html: &str) -> Vec<(Attributes, &str)> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("<a") {
        let start = at + found + 2;
        at = start;
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            continue;
        }
        let Some(end) = find_tag_end(&html[start..]) else {
            break;
        };
        let attrs = parse_attributes(&html[start..start + end]);
        let text_start = start + end + 1;
        let text_end = lower[text_start..]
            .find("</a")
            .map_or(html.len(), |i| text_start + i);
        out.push((attrs, &html[text_start..text_end]));
        at = text_end;
    }
    out
}

/// The offset of the `>` closing a tag, outside quotes.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_attributes(s: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (value, tail) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (&body[..end], body.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace())
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            rest = tail.trim_start();
            Some(unescape(value))
        } else {
            if name.is_empty() {
                // A stray `/` or other character: skip it.
                rest = rest.get(1..).unwrap_or("").trim_start();
                continue;
            }
            None
        };
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// HTML character references: the named few an index writes, and numeric ones.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &after[..e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_pages_give_files_hashes_and_attributes() {
        let page = Url::parse("https://example.org/simple/foo/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
            <a href="../../files/foo-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256=def">foo-1.0-py3-none-any.whl</a><br/>
            <A HREF='https://other.example/foo-1.1.tar.gz' data-yanked>foo-1.1.tar.gz</A>
            <a href="foo-2.0-py3-none-any.whl" data-core-metadata="true">foo-2.0-py3-none-any.whl</a>
            <abbr>not a link</abbr>
        </body></html>"#;
        let files = parse_html(&page, html, "idx");
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(
            files[0].url.as_str(),
            "https://example.org/files/foo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("abc"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].metadata, Some(Some("def".into())));
        assert!(!files[0].yanked);
        assert!(files[1].yanked);
        assert_eq!(files[1].filename, "foo-1.1.tar.gz");
        assert_eq!(files[2].metadata, Some(None));
        assert_eq!(
            files[2].url.as_str(),
            "https://example.org/simple/foo/foo-2.0-py3-none-any.whl"
        );
    }

    #[test]
    fn json_pages_give_files() {
        let page = Url::parse("https://example.org/simple/foo/").unwrap();
        let json = br#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
            {"filename":"foo-1.0-py3-none-any.whl","url":"https://files.example/foo-1.0-py3-none-any.whl","hashes":{"sha256":"aa"},"requires-python":">=3.7","core-metadata":{"sha256":"bb"},"yanked":false},
            {"filename":"foo-0.9-py3-none-any.whl","url":"/f/foo-0.9-py3-none-any.whl","hashes":{},"yanked":"broken","data-dist-info-metadata":true}
        ]}"#;
        let files = parse_page(
            &page,
            Some("application/vnd.pypi.simple.v1+json"),
            json,
            "idx",
        )
        .unwrap();
        assert_eq!(files[0].sha256.as_deref(), Some("aa"));
        assert_eq!(files[0].metadata, Some(Some("bb".into())));
        assert!(files[1].yanked);
        assert_eq!(files[1].metadata, Some(None));
        assert_eq!(
            files[1].url.as_str(),
            "https://example.org/f/foo-0.9-py3-none-any.whl"
        );
        assert!(
            parse_page(
                &page,
                Some("application/vnd.pypi.simple.v1+json"),
                b"{}",
                "idx"
            )
            .is_err()
        );
        assert!(parse_page(&page, Some("image/png"), b"", "idx").is_err());
    }

    #[test]
    fn file_names_give_projects() {
        assert_eq!(
            file_project("typing_extensions-4.16.0-py3-none-any.whl").as_deref(),
            Some("typing-extensions")
        );
        assert_eq!(
            file_project("Foo_Bar-1.0.tar.gz").as_deref(),
            Some("foo-bar")
        );
        assert_eq!(
            file_project("python-dotenv-1.2.4.zip").as_deref(),
            Some("python-dotenv")
        );
        assert_eq!(file_project("README.md"), None);
    }

    #[test]
    fn credentials_are_split_from_urls() {
        let (url, auth) =
            split_credentials(Url::parse("https://me:p%40ss@example.org/simple/").unwrap());
        assert_eq!(url.as_str(), "https://example.org/simple/");
        let auth = auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_deref()),
            ("me", Some("p@ss"))
        );
        assert!(!format!("{auth:?}").contains("p@ss"));
    }
}
