//! The registry HTTP layer: TLS (with the CAs and client certificates of Docker's and podman's
//! `certs.d`) or plain HTTP, the auth challenge (Basic or bearer tokens with the right scopes,
//! including identity tokens), and the three ways a request is made, each retried by
//! [`crate::http`]: [`Client::send`] (a request that may be sent again), [`Client::download`]
//! (a body, resumed with `Range` after a broken transfer) and `Client::upload` (a blob's final
//! `PUT`, sent once: whether a lost answer means a stored blob only the registry can say).
//!
//! As Docker and crane do, a registry on loopback or marked `--insecure` is tried with HTTPS
//! first and plain HTTP after; `--insecure` also accepts a certificate that does not verify.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use super::auth::{self, Credential};
use super::body::{Sink, Upload, file_body, request_name};
use crate::error_chain;
use crate::http::{
    Download, Exchange, Fault, Meter, Outcome, Retries, Size, Timeouts, is_certificate_error,
    is_tls_error, is_transient_status, retry_after,
};
use crate::reporter::{NoReporter, Reporter};
use crate::transport::error::{CertificateError, Error, TokenError};

/// How to reach a registry: plain settings, with what the environment names (credential files,
/// the user's `certs.d`) resolved into fields by [`RegistryOptions::from_env`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Allow plain HTTP, and TLS certificates that do not verify (Docker's insecure registries).
    pub insecure: bool,
    /// Credentials given explicitly; otherwise they are looked up in [`Self::auth`].
    pub credential: Option<Credential>,
    /// A directory of certificates (`*.crt` CAs, `*.cert` + `*.key` client pairs), directly or
    /// in a `HOST:PORT` subdirectory as in `certs.d`, besides the system's `certs.d` directories.
    pub cert_dir: Option<PathBuf>,
    /// How long to wait for the registry, and how slow a transfer may be.
    pub timeouts: Timeouts,
    /// Where credentials are looked up when none is given (none: nowhere).
    pub auth: auth::AuthSources,
    /// The user's `certs.d` (`$XDG_CONFIG_HOME/containers/certs.d`), after the system's.
    pub user_certs_dir: Option<PathBuf>,
}

impl RegistryOptions {
    /// Nothing given explicitly; credentials looked up and the user's `certs.d` found where
    /// `env` names them, as Docker and podman do.
    pub fn from_env(env: &crate::env::Env) -> Self {
        Self {
            auth: auth::AuthSources::from_env(env),
            user_certs_dir: env.config_home().map(|c| c.join("containers/certs.d")),
            ..Self::default()
        }
    }

    /// The directories whose certificates apply to `registry`: [`Self::cert_dir`] (and its
    /// `registry` subdirectory), then Docker's and podman's `certs.d`, then the user's.
    pub fn cert_dirs(&self, registry: &str) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(d) = &self.cert_dir {
            dirs.push(d.clone());
            dirs.push(d.join(registry));
        }
        dirs.push(Path::new("/etc/docker/certs.d").join(registry));
        dirs.push(Path::new("/etc/containers/certs.d").join(registry));
        if let Some(user) = &self.user_certs_dir {
            dirs.push(user.join(registry));
        }
        dirs.into_iter().filter(|d| d.is_dir()).collect()
    }
}

/// Adds the CAs and the client certificate found in `dirs` to `builder`.
fn with_certificates(
    mut builder: reqwest::ClientBuilder,
    dirs: &[PathBuf],
) -> Result<reqwest::ClientBuilder, CertificateError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertificateError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut identity = None;
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| CertificateError::Read {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in &files {
            match file.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let certs =
                        reqwest::Certificate::from_pem_bundle(&read(file)?).map_err(|source| {
                            CertificateError::NotPem {
                                path: file.clone(),
                                source,
                            }
                        })?;
                    builder = builder.tls_certs_merge(certs);
                }
                Some("cert") if identity.is_none() => {
                    let key = file.with_extension("key");
                    if !key.exists() {
                        return Err(CertificateError::NoKey {
                            cert: file.clone(),
                            key,
                        });
                    }
                    let mut pem = read(file)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    identity = Some(reqwest::Identity::from_pem(&pem).map_err(|source| {
                        CertificateError::Identity {
                            path: file.clone(),
                            source,
                        }
                    })?);
                }
                _ => {}
            }
        }
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// True for hosts where plain HTTP is tried after HTTPS without `--insecure` (loopback only).
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or_else(|| registry.rsplit_once(':').map_or(registry, |(h, _)| h));
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// The host that serves Docker Hub's API.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

#[derive(Clone, Debug)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut map = HashMap::new();
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        map.insert(key, value.to_string());
        rest = tail;
    }
    Some(Challenge::Bearer {
        realm: map.remove("realm")?,
        service: map.remove("service"),
    })
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
    /// Why the last token could not be had, for the refusal that follows.
    token_error: Option<TokenError>,
}

/// A connection to one registry, telling a [`Reporter`] about retries and transfers.
pub struct Client<'r> {
    http: reqwest::Client,
    registry: String,
    /// `https://HOST` or `http://HOST`, settled by the first request.
    base: tokio::sync::OnceCell<String>,
    /// Whether plain HTTP may be tried when HTTPS fails.
    plain_http: bool,
    credential: Option<(Credential, String)>,
    searched: Vec<String>,
    state: Mutex<AuthState>,
    timeouts: Timeouts,
    reporter: &'r dyn Reporter,
}

impl Client<'static> {
    /// A client for `registry` (`host[:port]`), with credentials looked up as Docker does.
    pub fn new(registry: &str, options: &RegistryOptions) -> Result<Self, Error> {
        crate::install_tls_provider();
        // No read timeout: the watchdog of each attempt (http::Meter) allows long uploads and
        // downloads that keep moving, and fails silent or crawling ones.
        let builder = reqwest::Client::builder()
            .user_agent(concat!("conda-docker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.timeouts.timeout)
            .tls_danger_accept_invalid_certs(options.insecure);
        let dirs = options.cert_dirs(registry);
        let http = with_certificates(builder, &dirs)
            .map_err(|source| Error::Certificates {
                registry: registry.to_string(),
                source,
            })?
            .build()
            .map_err(|source| Error::Http {
                registry: registry.to_string(),
                source,
            })?;
        let (credential, searched) =
            auth::lookup(registry, options.credential.as_ref(), &options.auth);
        Ok(Self {
            http,
            registry: registry.to_string(),
            base: tokio::sync::OnceCell::new(),
            plain_http: options.insecure || is_loopback(registry),
            credential,
            searched,
            state: Mutex::new(AuthState::default()),
            timeouts: options.timeouts,
            reporter: &NoReporter,
        })
    }
}

impl<'r> Client<'r> {
    /// This client, telling `reporter` about retries and transfers.
    pub fn with_reporter(self, reporter: &dyn Reporter) -> Client<'_> {
        Client {
            http: self.http,
            registry: self.registry,
            base: self.base,
            plain_http: self.plain_http,
            credential: self.credential,
            searched: self.searched,
            state: self.state,
            timeouts: self.timeouts,
            reporter,
        }
    }

    /// The reporter this client tells about retries and transfers.
    pub fn reporter(&self) -> &dyn Reporter {
        self.reporter
    }

    /// The scheme and host to use: HTTPS, unless plain HTTP is allowed and the server does
    /// not speak TLS. A certificate that does not verify is an error, never a reason to fall
    /// back to plain HTTP.
    async fn base(&self) -> Result<&str, Error> {
        let host = api_host(&self.registry);
        self.base
            .get_or_try_init(|| async {
                let https = format!("https://{host}");
                if !self.plain_http {
                    return Ok(https);
                }
                let ping = self
                    .http
                    .get(format!("{https}/v2/"))
                    .timeout(self.timeouts.timeout.min(Duration::from_secs(15)))
                    .send()
                    .await;
                match ping {
                    Ok(_) => Ok(https),
                    Err(e) if is_certificate_error(&e) => {
                        Err(self.network_error("GET /v2/", 1, Fault::Http(e)))
                    }
                    Err(e) => {
                        tracing::debug!("{https}: {}; trying plain HTTP", error_chain(&e));
                        Ok(format!("http://{host}"))
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    /// The registry host, as given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The absolute URL for `path` (which starts with `/v2/`), or `path` if already absolute.
    pub async fn url(&self, path: &str) -> Result<String, Error> {
        if path.starts_with("http://") || path.starts_with("https://") {
            Ok(path.to_string())
        } else {
            Ok(format!("{}{path}", self.base().await?))
        }
    }

    /// The registry answered `what` with `reason`, which the image or the protocol does not allow.
    pub fn unexpected(&self, what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Unexpected {
            registry: self.registry.clone(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// `what` (a manifest, index or config) does not parse.
    pub fn malformed(&self, what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
        let (registry, what) = (self.registry.clone(), what.into());
        move |source| Error::Malformed {
            registry,
            what,
            source,
        }
    }

    /// The image side failed on `digest` of `repository` while `action` (`downloading blob`):
    /// a [`Error::Blob`], or the cancellation as it is.
    pub fn blob_error(
        &self,
        action: &'static str,
        repository: &str,
        digest: &dyn std::fmt::Display,
    ) -> impl FnOnce(crate::image::Error) -> Error + use<> {
        let registry = self.registry.clone();
        let (repository, digest) = (repository.to_string(), digest.to_string());
        move |source| match source {
            crate::image::Error::Cancelled => Error::Image(source),
            source => Error::Blob {
                registry,
                repository,
                action,
                digest,
                source: Box::new(source),
            },
        }
    }

    /// The registry refused `what` with `response`: a [`Error::Status`] holding the status and
    /// the start of the body (at most 4 KiB read, for at most 5 s).
    pub async fn refused(&self, what: impl Into<String>, mut response: Response) -> Error {
        let status = response.status();
        let url = response.url().to_string();
        let mut body = Vec::new();
        let read = async {
            while let Ok(Some(chunk)) = response.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= 4096 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
        let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        Error::Status {
            registry: self.registry.clone(),
            what: what.into(),
            url,
            status: status.as_u16(),
            answer: format!("{status} {}", body.trim()),
        }
    }

    /// The retries of one request to this registry.
    pub(crate) fn retries(&self) -> Retries<'_> {
        Retries::new("registry", &self.registry, self.timeouts, self.reporter)
    }

    /// The error for `request`, failed with `fault` after `attempts` attempts.
    pub(crate) fn network_error(&self, request: &str, attempts: u32, fault: Fault) -> Error {
        let hint = if is_certificate_error(&fault) {
            format!(
                "; its TLS certificate is not trusted: put its CA certificate in \
                 /etc/docker/certs.d/{}/ca.crt or in a directory given with --cert-dir",
                self.registry
            )
        } else if !self.plain_http && is_tls_error(&fault) {
            "; it seems to serve plain HTTP: pass --insecure if you trust it".into()
        } else {
            String::new()
        };
        Error::Network {
            registry: self.registry.clone(),
            request: request.to_string(),
            attempts,
            unreached: fault.unreached(),
            hint,
            source: Box::new(fault),
        }
    }

    fn unauthorized(&self, status: StatusCode, url: &str, token: Option<TokenError>) -> Error {
        let hint = match &self.credential {
            Some((_, source)) => format!(
                "the credentials from {source} were refused, or do not grant access to this repository"
            ),
            None => format!(
                "the repository does not exist or needs credentials, and none were found (looked in \
                 --creds, {}); run `conda-docker login {}`",
                self.searched.join(", "),
                self.registry
            ),
        };
        Error::Unauthorized {
            registry: self.registry.clone(),
            request: url.to_string(),
            status: status.as_u16(),
            hint,
            token: token.map(Box::new),
        }
    }

    /// One attempt at a request: built by `build`, with authorization for `scopes` (sent again,
    /// once, after an auth challenge), watched by `meter`. `Ok(Err(fault))` for a failure that
    /// trying again may cure (a broken connection, silence, 429, 5xx); 401 and 403 become
    /// [`Error::Unauthorized`]; any other answer is the caller's.
    async fn exchange(
        &self,
        method: &Method,
        url: &str,
        scopes: &[String],
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
        meter: &Meter,
    ) -> Result<Result<Response, Fault>, Error> {
        let mut answered_challenge = false;
        loop {
            let mut req = build(self.http.request(method.clone(), url));
            if let Some(value) = self.authorization(scopes).await {
                req = req.header(AUTHORIZATION, value);
            }
            let response = tokio::select! {
                r = req.send() => r,
                fault = meter.watch(self.timeouts) => return Ok(Err(fault)),
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => return Ok(Err(Fault::Http(e))),
            };
            meter.touch();
            match response.status() {
                StatusCode::UNAUTHORIZED if !answered_challenge => {
                    answered_challenge = true;
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|h| h.to_str().ok())
                        .and_then(parse_challenge);
                    let Some(challenge) = challenge else {
                        let request = request_name(method, url);
                        return Err(self.unauthorized(StatusCode::UNAUTHORIZED, &request, None));
                    };
                    let mut state = self.state.lock().await;
                    state.challenge = Some(challenge);
                    state.tokens.remove(&scopes.join(" "));
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let token = self.state.lock().await.token_error.take();
                    let request = request_name(method, url);
                    return Err(self.unauthorized(response.status(), &request, token));
                }
                status if is_transient_status(status) => {
                    return Ok(Err(Fault::Status {
                        status,
                        retry_after: retry_after(response.headers()),
                        response: Box::new(response),
                    }));
                }
                _ => return Ok(Ok(response)),
            }
        }
    }

    /// Sends a request built by `build` with authorization for `scopes`, answering an auth
    /// challenge once and retrying what may pass (see [`crate::http`]); the request must be
    /// one that may be sent twice. Any status is returned to the caller (a 429 or 5xx once the
    /// retries are spent) except 401/403, which become [`Error::Unauthorized`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        scopes: &[String],
        build: impl Fn(RequestBuilder) -> RequestBuilder + Sync,
    ) -> Result<Response, Error> {
        let url = self.url(path).await?;
        let request = request_name(&method, &url);
        let mut retries = self.retries();
        loop {
            let meter = Meter::new();
            let fault = match self.exchange(&method, &url, scopes, &build, &meter).await? {
                Ok(response) => return Ok(response),
                Err(fault) => fault,
            };
            if !retries.again(&request, &fault).await {
                return match fault {
                    Fault::Status { response, .. } => Ok(*response),
                    fault => Err(self.network_error(&request, retries.attempts(), fault)),
                };
            }
        }
    }

    /// GETs `path` (built further by `build`) into `sink` through [`crate::http::download`]:
    /// retrying what may pass, and after a broken or crawling transfer asking for the rest
    /// with `Range`. `expected` is the size a descriptor gives: more is an error, less is
    /// resumed. `progress` hears the bytes held after each chunk. `Ok(None)` once complete;
    /// `Ok(Some(answer))` when the registry refused (404 and other failures, a 429 or 5xx once
    /// the retries are spent).
    pub async fn download(
        &self,
        path: &str,
        scopes: &[String],
        expected: Option<u64>,
        sink: &mut dyn Sink,
        progress: &(dyn Fn(u64) + Sync),
        build: impl Fn(RequestBuilder) -> RequestBuilder + Sync,
    ) -> Result<Option<Response>, Error> {
        let url = self.url(path).await?;
        let request = request_name(&Method::GET, &url);
        let how = Download {
            request: &request,
            size: expected.map_or(Size::Any, Size::Exactly),
            resume: true,
            timeouts: self.timeouts,
            progress,
        };
        let get = Get {
            client: self,
            url: &url,
            scopes,
            build: &build,
        };
        match crate::http::download(&get, sink, &how, &mut self.retries()).await? {
            Outcome::Complete(_) => Ok(None),
            Outcome::Refused(response) => Ok(Some(response)),
            Outcome::Failed {
                fault: Fault::Status { response, .. },
                ..
            } => Ok(Some(*response)),
            Outcome::Failed {
                request,
                attempts,
                fault,
            } => Err(self.network_error(&request, attempts, fault)),
        }
    }

    /// PUTs `body` to `url` (a blob's final `PUT`) once: after a failure the registry may or
    /// may not hold the blob, and the upload URL may be spent, so only the caller, who can ask
    /// the registry, may go on with `retries`. An attempt that sent enough to count as
    /// progress restarts their clock, not their count: a new upload starts from the first byte,
    /// so one that trickles or is never answered fails after its few attempts instead of
    /// starting over for ever. `Ok(Err(fault))` for a failure that trying again may cure.
    pub(crate) async fn upload(
        &self,
        url: &str,
        scopes: &[String],
        body: &Upload,
        retries: &mut Retries<'_>,
    ) -> Result<Result<Response, Fault>, Error> {
        if let Upload::File(range) = body {
            std::fs::metadata(&range.path)
                .map_err(crate::image::Error::io("reading", &range.path))?;
        }
        let meter = Meter::new();
        let build = |r: RequestBuilder| {
            let r = r.header(CONTENT_TYPE, "application/octet-stream");
            match body {
                Upload::Bytes(b) => r.body(b.clone()),
                Upload::File(range) => r
                    .header(CONTENT_LENGTH, range.size)
                    .body(file_body(range, meter.clone())),
            }
        };
        let answer = self
            .exchange(&Method::PUT, url, scopes, &build, &meter)
            .await;
        if meter.bytes() >= retries.progress_bytes() {
            retries.restart_clock();
        }
        answer
    }

    /// Whether the registry can be reached at all: one `GET /v2/` over HTTPS, then over plain
    /// HTTP where that is allowed, without credentials or retries and each for at most `limit`.
    /// `Err` only when the requests to come would surely fail too: no connection could be made
    /// (refused, no such host, TLS refused or a certificate that does not verify). Any answer,
    /// silence or a broken connection leaves the verdict to them (and their `--timeout`).
    pub async fn probe(&self, limit: Duration) -> Result<(), Error> {
        let host = api_host(&self.registry);
        let get = |scheme: &str| {
            self.http
                .get(format!("{scheme}://{host}/v2/"))
                .timeout(limit)
                .send()
        };
        let refused = |e: reqwest::Error| self.network_error("GET /v2/", 1, Fault::Http(e));
        let e = match get("https").await {
            Err(e) if !e.is_timeout() => e,
            _ => return Ok(()),
        };
        if !self.plain_http || is_certificate_error(&e) {
            return if e.is_connect() {
                Err(refused(e))
            } else {
                Ok(())
            };
        }
        match get("http").await {
            Err(e) if e.is_connect() && !e.is_timeout() => Err(refused(e)),
            _ => Ok(()),
        }
    }

    /// Checks that the registry accepts this client's credentials (`docker login`'s check).
    pub async fn check_login(&self) -> Result<(), Error> {
        let response = self.send(Method::GET, "/v2/", &[], |r| r).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.refused("GET /v2/", response).await)
        }
    }

    /// The Authorization header for `scopes`, fetching a bearer token when needed.
    async fn authorization(&self, scopes: &[String]) -> Option<HeaderValue> {
        let mut state = self.state.lock().await;
        match state.challenge.clone()? {
            Challenge::Basic => match &self.credential {
                Some((Credential::Basic { username, password }, _)) => basic(username, password),
                _ => None,
            },
            Challenge::Bearer { realm, service } => {
                let key = scopes.join(" ");
                if let Some(token) = state.tokens.get(&key) {
                    return HeaderValue::from_str(&format!("Bearer {token}")).ok();
                }
                match self.fetch_token(&realm, service.as_deref(), scopes).await {
                    Ok(token) => {
                        let value = HeaderValue::from_str(&format!("Bearer {token}")).ok();
                        state.tokens.insert(key, token);
                        value
                    }
                    Err(e) => {
                        // Sent without a token, the request is refused: the refusal names this.
                        tracing::debug!("{}", error_chain(&e));
                        state.token_error = Some(e);
                        None
                    }
                }
            }
        }
    }

    /// Asks the token server for a token covering `scopes`.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, TokenError> {
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let failed = |source| TokenError::Request {
            realm: realm.to_string(),
            source,
        };
        let request = self.token_request(realm, service, scopes).map_err(failed)?;
        let mut response = self.http.execute(request).await.map_err(failed)?;
        if !response.status().is_success() {
            return Err(TokenError::Status {
                realm: realm.to_string(),
                status: response.status().as_u16(),
            });
        }
        // A token answer is small: one that is not is refused before it fills memory.
        const TOKEN_CAP: usize = 1 << 20;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > TOKEN_CAP {
                return Err(TokenError::TooLarge {
                    realm: realm.to_string(),
                    limit: TOKEN_CAP,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|source| TokenError::Malformed {
                realm: realm.to_string(),
                source,
            })?;
        answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| TokenError::NoToken {
                realm: realm.to_string(),
            })
    }

    /// The request for a token covering `scopes`: an identity token's refresh (OAuth2 POST),
    /// else a GET with the Basic credential, if any.
    fn token_request(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> reqwest::Result<reqwest::Request> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        match &self.credential {
            Some((Credential::IdentityToken(refresh), _)) => {
                let scope = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "conda-docker"),
                    ("scope", scope.as_str()),
                ];
                form.extend(query.iter().copied());
                self.http
                    .post(realm)
                    .timeout(self.timeouts.timeout)
                    .form(&form)
                    .build()
            }
            other => {
                for s in scopes {
                    query.push(("scope", s));
                }
                let mut req = self
                    .http
                    .get(realm)
                    .timeout(self.timeouts.timeout)
                    .query(&query);
                if let Some((Credential::Basic { username, password }, _)) = other {
                    req = req.basic_auth(username, Some(password));
                }
                req.build()
            }
        }
    }
}

fn basic(username: &str, password: &str) -> Option<HeaderValue> {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The `repository:NAME:ACTIONS` scope string.
pub fn scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// A registry GET, as [`crate::http::download`] makes it: with authorization for `scopes`
/// and `Range` when it resumes.
struct Get<'a, B> {
    client: &'a Client<'a>,
    url: &'a str,
    scopes: &'a [String],
    build: &'a B,
}

impl<B: Fn(RequestBuilder) -> RequestBuilder + Sync> Exchange for Get<'_, B> {
    type Error = Error;

    async fn send(
        &self,
        range: Option<&str>,
        meter: &Meter,
    ) -> Result<Result<Response, Fault>, Error> {
        let build = |r: RequestBuilder| match range {
            Some(range) => (self.build)(r).header(RANGE, range),
            None => (self.build)(r),
        };
        self.client
            .exchange(&Method::GET, self.url, self.scopes, &build, meter)
            .await
    }

    fn too_large(&self, url: &url::Url, limit: u64) -> Error {
        self.client.unexpected(
            request_name(&Method::GET, url.as_str()),
            format!("the registry sent more than the {limit} bytes the descriptor gives"),
        )
    }
}

/// A registry [`Sink`] is a download's sink, its errors the registry's.
impl<T: Sink + ?Sized> crate::http::Sink<Error> for T {
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        Ok(Sink::append(self, bytes)?)
    }
    fn restart(&mut self) -> Result<(), Error> {
        Ok(Sink::restart(self)?)
    }
    fn received(&self) -> u64 {
        Sink::received(self)
    }
}

/// Headers of a response, for reading `Location` and `Docker-Content-Digest`.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn tls_failures_are_told_by_their_type_not_their_text() {
        use crate::http::{is_certificate_error, is_tls_error};
        let carried = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let unknown_ca = carried(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(is_certificate_error(&unknown_ca) && is_tls_error(&unknown_ca));
        let plain = carried(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(!is_certificate_error(&plain) && is_tls_error(&plain));
        // The words alone are no TLS failure.
        let words = std::io::Error::other("invalid peer certificate: received corrupt message");
        assert!(!is_certificate_error(&words) && !is_tls_error(&words));
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_failure() {
        use std::io::{Read, Write};
        crate::install_tls_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.read(&mut [0u8; 1024]);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let error = reqwest::Client::new()
            .get(format!("https://{addr}/v2/"))
            .send()
            .await
            .unwrap_err();
        assert!(is_tls_error(&error), "{}", error_chain(&error));
        assert!(!is_certificate_error(&error), "{}", error_chain(&error));
        assert!(!Fault::Http(error).transient());
    }

    #[test]
    fn the_user_certs_d_comes_from_the_env_given() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir
            .path()
            .join("config/containers/certs.d/reg.example:5000");
        std::fs::create_dir_all(&certs).unwrap();
        let env = crate::env::Env::new(
            [(
                "XDG_CONFIG_HOME",
                dir.path().join("config").display().to_string(),
            )],
            "/",
        );
        let options = RegistryOptions::from_env(&env);
        assert_eq!(options.cert_dirs("reg.example:5000"), [certs]);
        assert!(
            RegistryOptions::default()
                .cert_dirs("reg.example:5000")
                .is_empty()
        );
    }

    #[test]
    fn loopback_hosts_get_plain_http() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["ghcr.io", "registry.example:5000", "10.0.0.1:5000"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
