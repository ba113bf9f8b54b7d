//! The transports' error type: the image side's [`crate::image::Error`] (all a file transport
//! can fail with), or a registry's failure, with the registry, the repository, the digest or
//! the request it happened on, and its cause as a source.

use std::path::PathBuf;

use crate::http::Fault;
use crate::image;

/// What can go wrong reading an image from a location or writing one to it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, checking or writing the image failed (every failure of the docker-archive,
    /// OCI layout and oci-archive transports, and cancellation:
    /// [`image::Error::Cancelled`]).
    #[error(transparent)]
    Image(#[from] image::Error),
    /// A blob or manifest moved to or from a registry failed on the image side: its bytes do
    /// not match its digest, or the cache could not hold it.
    #[error("registry `{registry}`: {action} {digest} of `{repository}`")]
    Blob {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// What was being done (`downloading blob`, `storing manifest`, ...).
        action: &'static str,
        /// The blob's digest, or the manifest's tag or digest.
        digest: String,
        /// The cause.
        #[source]
        source: Box<image::Error>,
    },
    /// The registry refused the credentials, or needs some.
    #[error("registry `{registry}` refused access ({status}): {hint}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The request refused (`GET https://HOST/v2/REPO/manifests/TAG`).
        request: String,
        /// The HTTP status (401 or 403).
        status: u16,
        /// Which credentials were tried, or where they were looked for.
        hint: String,
        /// Why no token could be had for the request, when that is why it was refused.
        #[source]
        token: Option<Box<TokenError>>,
    },
    /// The repository holds no such tag or manifest.
    #[error("no image `{reference}` in `{registry}/{repository}`; it holds: {available}")]
    NotFound {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The tag or digest asked for.
        reference: String,
        /// The tags the repository lists instead.
        available: String,
    },
    /// The registry answered with a status that is neither success nor one to try again on
    /// (or a 429 or 5xx once the retries were spent).
    #[error("registry `{registry}`: {what}: {answer}")]
    Status {
        /// The registry host.
        registry: String,
        /// What was asked: the manifest `REPO:TAG`, the upload of a blob, ...
        what: String,
        /// The URL answered.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The status and the start of the body, as the registry sent them.
        answer: String,
    },
    /// A manifest, index or config from the registry is not valid JSON of its kind.
    #[error("registry `{registry}`: {what} does not parse")]
    Malformed {
        /// The registry host.
        registry: String,
        /// Which document: the manifest, index or config, with its digest and reference.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The registry answered something the image cannot be made of, or that the protocol does
    /// not allow.
    #[error("registry `{registry}`: {what}: {reason}")]
    Unexpected {
        /// The registry host.
        registry: String,
        /// What was asked or read (`REF`, `layer DIGEST`, a request).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request failed after the retries it allowed.
    #[error("registry `{registry}`: {}{hint}", summary(*.unreached, request, *.attempts))]
    Network {
        /// The registry host.
        registry: String,
        /// The request (method and URL, or what was being uploaded).
        request: String,
        /// How many attempts were made.
        attempts: u32,
        /// True when no connection was ever made.
        unreached: bool,
        /// A way out, when one is known (`; its TLS certificate is not trusted: ...`).
        hint: String,
        /// Why the last attempt failed.
        #[source]
        source: Box<Fault>,
    },
    /// The certificates for the registry could not be used.
    #[error("registry `{registry}`: reading certificates")]
    Certificates {
        /// The registry host.
        registry: String,
        /// Which file, and why.
        #[source]
        source: CertificateError,
    },
    /// The HTTP client could not be set up.
    #[error("registry `{registry}`: cannot set up HTTP")]
    Http {
        /// The registry host.
        registry: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A registry was read or written in a session that holds no registry settings and blob
    /// store ([`super::Session::with_remote`]).
    #[error("{location}: reaching a registry needs its settings and a blob store")]
    NoRemote {
        /// The registry location.
        location: String,
    },
}

fn summary(unreached: bool, request: &str, attempts: u32) -> String {
    let tries = match attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    if unreached {
        format!("cannot reach it ({request}, {tries})")
    } else {
        format!("{request} failed ({tries})")
    }
}

impl Error {
    /// True when the operation stopped because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Image(image::Error::Cancelled))
    }

    /// The image side's error this one is or wraps, if any.
    pub fn image_error(&self) -> Option<&image::Error> {
        match self {
            Self::Image(e) => Some(e),
            Self::Blob { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a certificate from a `certs.d` directory or `--cert-dir` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file or directory could not be read.
    #[error("reading `{}`", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A `*.crt` file holds no PEM certificate.
    #[error("`{}` is not a PEM certificate", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A client certificate (`*.cert`) has no key (`*.key`) beside it.
    #[error("client certificate `{}` has no key `{}` beside it", cert.display(), key.display())]
    NoKey {
        /// The certificate.
        cert: PathBuf,
        /// The key looked for.
        key: PathBuf,
    },
    /// A client certificate and its key do not make an identity.
    #[error("client certificate `{}`", path.display())]
    Identity {
        /// The certificate.
        path: PathBuf,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

/// Why a bearer token could not be had from a registry's token server.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request could not be made, or its answer not read.
    #[error("asking the token server `{realm}`")]
    Request {
        /// The token server's URL.
        realm: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The token server refused.
    #[error("the token server `{realm}` answered {status}")]
    Status {
        /// The token server's URL.
        realm: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer is larger than a token answer may be.
    #[error("the token server `{realm}` sent more than {limit} bytes; a token answer is small")]
    TooLarge {
        /// The token server's URL.
        realm: String,
        /// The most bytes read.
        limit: usize,
    },
    /// The answer is not the JSON a token server sends.
    #[error("the token server `{realm}` sent an answer that does not parse")]
    Malformed {
        /// The token server's URL.
        realm: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The answer holds no token.
    #[error("the token server `{realm}` sent no token")]
    NoToken {
        /// The token server's URL.
        realm: String,
    },
}

/// The transports' result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
