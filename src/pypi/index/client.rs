//! The index client's HTTP: one reqwest client (rustls on ring, the CA files given, or none
//! checked with `--insecure`) and GETs through [`crate::http`]'s retry policy, each body
//! bounded by a cap.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Response, StatusCode};
use url::Url;

use super::Error;
use super::locations::Basic;
use crate::error_chain;
use crate::http::{
    Download, Exchange, Fault, Meter, Outcome, Retries, Sink, Size, Timeouts, download,
    is_certificate_error,
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
}

impl Client {
    /// A client for `options`, telling `reporter` of retries.
    pub(super) fn new(options: &HttpOptions, reporter: Arc<dyn Reporter>) -> Result<Self, Error> {
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
        })
    }

    /// GETs `request.url` into `body` through [`crate::http::download`], retrying what may
    /// pass. `Ok(None)` for 404 and 410 (the index has no such project or file); other
    /// failures are errors.
    pub(super) async fn get(
        &self,
        request: &Get<'_>,
        body: &mut dyn Sink<Error>,
    ) -> Result<Option<Answer>, Error> {
        let url = request.url;
        let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut retries = Retries::new("index", host, self.timeouts, &*self.reporter);
        let how = Download {
            request: &format!("GET {url}"),
            size: Size::AtMost(request.cap),
            resume: request.resume,
            timeouts: self.timeouts,
            progress: &|_| {},
        };
        let exchange = Attempt {
            client: self,
            get: request,
        };
        match download(&exchange, body, &how, &mut retries).await? {
            Outcome::Complete(response) => Ok(Some(Answer {
                url: response.as_ref().map_or(url, |r| r.url()).clone(),
                content_type: response.as_ref().and_then(|r| {
                    let value = r.headers().get(reqwest::header::CONTENT_TYPE)?;
                    value.to_str().ok().map(str::to_string)
                }),
            })),
            Outcome::Refused(response) => match response.status() {
                StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
                status => Err(request.status(status, request.hint(status))),
            },
            Outcome::Failed {
                attempts, fault, ..
            } => Err(request.failed(attempts, fault)),
        }
    }
}

/// One GET: what it asks for, and the errors it names.
#[derive(Clone, Copy)]
pub(super) struct Get<'a> {
    /// The URL (without credentials).
    pub(super) url: &'a Url,
    /// Its credentials.
    pub(super) auth: Option<&'a Basic>,
    /// The `Accept` header, if any.
    pub(super) accept: Option<&'a str>,
    /// The most bytes the body may hold.
    pub(super) cap: u64,
    /// What is fetched, for messages (`the wheel \`x\``).
    pub(super) what: &'a str,
    /// A broken transfer is resumed with `Range` (for what a hash checks), else started again.
    pub(super) resume: bool,
}

impl<'a> Get<'a> {
    /// A GET of `what` at `url`, at most `cap` bytes, started again after a broken transfer.
    pub(super) fn new(url: &'a Url, what: &'a str, cap: u64) -> Self {
        Self {
            url,
            auth: None,
            accept: None,
            cap,
            what,
            resume: false,
        }
    }

    /// Asking for `accept`.
    pub(super) fn accept(self, accept: &'a str) -> Self {
        Self {
            accept: Some(accept),
            ..self
        }
    }

    /// Resumed with `Range` after a broken transfer (for a body a hash checks).
    pub(super) fn resumed(self) -> Self {
        Self {
            resume: true,
            ..self
        }
    }

    /// The index answered `status`, with `hint` after it.
    fn status(&self, status: StatusCode, hint: String) -> Error {
        Error::Status {
            url: self.url.to_string(),
            what: self.what.to_string(),
            status: status.as_u16(),
            hint,
        }
    }

    /// What to do about a refusal: credentials for 401 and 403, else nothing.
    fn hint(&self, status: StatusCode) -> String {
        if !matches!(status.as_u16(), 401 | 403) {
            return String::new();
        }
        match self.auth {
            Some(auth) => format!("; the credentials for `{}` were refused", auth.user),
            None => "; give credentials in the index URL \
                     (`https://user:password@host/simple`) or in ~/.netrc"
                .into(),
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

/// A [`Get`] as [`crate::http::download`] makes it, on `client`.
struct Attempt<'a> {
    client: &'a Client,
    get: &'a Get<'a>,
}

impl Exchange for Attempt<'_> {
    type Error = Error;

    async fn send(
        &self,
        range: Option<&str>,
        meter: &Meter,
    ) -> Result<Result<Response, Fault>, Error> {
        let get = self.get;
        let mut request = self.client.http.get(get.url.clone());
        if let Some(accept) = get.accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        if let Some(auth) = get.auth {
            request = request.basic_auth(&auth.user, auth.password.as_ref());
        }
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        crate::http::attempt(request.send(), meter, self.client.timeouts, |e| {
            Ok(Fault::Http(e))
        })
        .await
    }

    fn too_large(&self, _url: &Url, limit: u64) -> Error {
        Error::TooLarge {
            url: self.get.url.to_string(),
            what: self.get.what.to_string(),
            limit,
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
