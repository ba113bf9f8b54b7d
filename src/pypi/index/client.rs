//! The index client's HTTP: one reqwest client (rustls on ring, the CA files given, or none
//! checked with `--insecure`) and GETs through [`crate::http`]'s retry policy, each body
//! bounded by a cap.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::StatusCode;
use url::Url;

use super::Error;
use super::locations::Basic;
use crate::error_chain;
use crate::http::{
    Fault, Meter, Retries, Timeouts, is_certificate_error, is_transient_status, retry_after,
};
use crate::reporter::Reporter;

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

/// An HTTP client for indexes: the connection pool, the timeouts and who hears of retries.
pub(super) struct Client {
    http: reqwest::Client,
    timeouts: Timeouts,
    reporter: Arc<dyn Reporter>,
    /// Where bodies written to disk go, for messages.
    cache: PathBuf,
}

impl Client {
    /// A client for `options`, telling `reporter` of retries; bodies that go to disk go to
    /// `cache`.
    pub(super) fn new(
        options: &HttpOptions,
        reporter: Arc<dyn Reporter>,
        cache: PathBuf,
    ) -> Result<Self, Error> {
        crate::install_tls_provider();
        // No read timeout: the watchdog of each attempt (`Meter::watch`) fails silent or
        // crawling ones.
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("conda-docker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeouts.timeout)
            .tls_danger_accept_invalid_certs(options.insecure);
        for file in &options.ca_certificates {
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
        Ok(Self {
            http,
            timeouts: options.timeouts,
            reporter,
            cache,
        })
    }

    /// GETs `url` into `body`, retrying what may pass (see [`crate::http`]). `Ok(None)` for
    /// 404 and 410 (the index has no such project or file); other failures are errors.
    pub(super) async fn get(
        &self,
        url: &Url,
        auth: Option<&Basic>,
        accept: Option<&str>,
        cap: u64,
        what: &str,
        body: &mut dyn Body,
    ) -> Result<Option<Answer>, Error> {
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let request = format!("GET {url}");
        let mut retries = Retries::new("index", host, self.timeouts, &*self.reporter);
        loop {
            let attempt = Attempt {
                url,
                accept,
                auth,
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
        let timeouts = self.timeouts;
        let meter = Meter::new();
        let mut request = self.http.get(a.url.clone());
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
        let cache = || self.cache.clone();
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
        if is_certificate_error(&message) {
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

/// What answered a GET.
pub(super) struct Answer {
    /// The URL after redirects (relative links are relative to it).
    pub(super) url: Url,
    /// Its `Content-Type`.
    pub(super) content_type: Option<String>,
}

/// Where a body goes.
pub(super) trait Body: Send {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn restart(&mut self) -> std::io::Result<()>;
    fn len(&self) -> u64;
}

#[derive(Default)]
pub(super) struct Memory(pub(super) Vec<u8>);

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
