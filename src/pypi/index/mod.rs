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
//!
//! Indexes cannot reach the host: a link on a page served over http(s) is followed only to
//! http(s); `file://` links and paths only from `--find-links` or an index given as a local
//! path. Every wheel is checked against its sha256 before anything parses it (a local one is
//! copied into the cache first, a FIFO or device never opened), and a local file's own hash is
//! never printed.
//!
//! By concern: `locations` (sources and credentials), `client` (HTTP), `pages` (PEP 691 and
//! PEP 503 pages) over `html` (the tokenizer), and `cache` (the wheel cache).

mod cache;
mod client;
mod html;
mod locations;
mod pages;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rattler_networking::authentication_storage::backends::netrc::NetRcStorage;
use sha2::{Digest, Sha256};
use url::Url;

pub use cache::{cached_wheel, wheel_dir};
pub use client::HttpOptions;
pub use locations::{Locations, percent_decode};
pub use pages::{file_project, sdist_stem};

use super::normalize_name;
use super::wheel::{self, Limits};
use crate::http::Fault;
use crate::http::Sink;
use crate::reporter::{NoReporter, Reporter};
use client::{Answer, Client, Get};
use locations::{Source, directory_files};
use pages::{followed, parse_html, parse_page};

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
    client: Client,
    sources: Vec<Source>,
    netrc: Option<NetRcStorage>,
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

impl Index {
    /// An index client for `options` (reads `~/.netrc` or `$NETRC` once, here).
    pub fn new(options: &IndexOptions) -> Result<Self, Error> {
        let client = Client::new(&options.http, options.reporter.clone())?;
        Ok(Self(Arc::new(Inner {
            client,
            sources: locations::sources(&options.locations)?,
            netrc: locations::netrc()?,
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
            let (files, not_followed) = match source {
                Source::Simple { base, .. } => followed(base, self.simple_page(base, &name).await?),
                Source::Directory(dir) => (directory_files(dir, &name)?, 0),
                Source::Links { page, .. } => followed(page, self.links_page(page, &name).await?),
            };
            let mut searched = source.name();
            if not_followed > 0 {
                searched.push_str(&format!(
                    " ({not_followed} link(s) not followed: an index served over the network \
                     links only to http(s))"
                ));
            }
            project.searched.push(searched);
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
        let mut body = Vec::new();
        let Some(answer) = self
            .get(Get::new(&url, &what, MAX_PAGE).accept(ACCEPT), &mut body)
            .await?
        else {
            return Ok(Vec::new());
        };
        parse_page(
            &answer.url,
            answer.content_type.as_deref(),
            &body,
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
        let mut body = Vec::new();
        let Some(answer) = self
            .get(
                Get::new(page, &what, MAX_PAGE).accept("text/html"),
                &mut body,
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8_lossy(&body);
        Ok(parse_html(&answer.url, &text, page.as_ref())
            .into_iter()
            .filter(|f| file_project(&f.filename).as_deref() == Some(name))
            .collect())
    }

    /// The `METADATA` of `file` (a wheel of `project`): its PEP 658 `.metadata` when the index
    /// offers one (checked against its hash when given), else read from the wheel once it is in
    /// the cache, checked against its hash: no wheel is parsed before its hash is checked.
    pub async fn metadata(&self, file: &DistFile) -> Result<String, Error> {
        if let Some(hash) = &file.metadata
            && file.url.scheme() != "file"
        {
            let url =
                Url::parse(&format!("{}.metadata", file.url)).map_err(|e| Error::Location {
                    location: file.url.to_string(),
                    reason: e.to_string(),
                })?;
            let what = format!("the metadata of `{}`", file.filename);
            let mut body = Vec::new();
            if self
                .get(Get::new(&url, &what, MAX_METADATA), &mut body)
                .await?
                .is_some()
            {
                if let Some(expected) = hash {
                    let found = hex::encode(Sha256::digest(&body));
                    if !found.eq_ignore_ascii_case(expected) {
                        return Err(Error::HashMismatch {
                            file: format!("{}.metadata", file.filename),
                            url: url.to_string(),
                            expected: expected.clone(),
                            found,
                        });
                    }
                }
                return String::from_utf8(body).map_err(|_| Error::Page {
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

    /// `get` into `body`, with the credentials for its URL (see [`Client::get`]).
    async fn get(&self, get: Get<'_>, body: &mut dyn Sink<Error>) -> Result<Option<Answer>, Error> {
        let auth = locations::credentials(&self.0.sources, self.0.netrc.as_ref(), get.url);
        let get = Get {
            auth: auth.as_ref(),
            ..get
        };
        self.0.client.get(&get, body).await
    }
}
