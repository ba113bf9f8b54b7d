//! The one HTTP retry policy, for every client that talks to a server over the network (the
//! registry client, the PyPI index client): when a request is tried again (`Retries`), the
//! failures it may cure ([`Fault`]) and the watchdog that turns a silent or crawling connection
//! into one (`Meter::watch`). It knows no OCI and no conda: a caller names its kind of server
//! and the host (`registry`, `index`) for messages and [`Reporter::retrying`].
//!
//! An attempt fails when nothing moves for [`Timeouts::timeout`] (connecting, waiting for an
//! answer, mid-transfer), or when a body in transit moves slower than
//! [`Timeouts::low_speed_limit`] over [`Timeouts::low_speed_time`], as curl's
//! `--speed-limit`/`--speed-time` do. A failure that may pass (a broken connection, silence, a
//! crawl, 429, 5xx) is tried again at most 4 times since the request last made progress, 0.5,
//! 1, 2 and 4 s apart, or as long as the server asks with `Retry-After` (at most 60 s), never
//! beyond the timeout; a failed TLS handshake or certificate is not tried again.
//!
//! Downloads, for both clients, go through one loop ([`download`]): a body into a restartable
//! [`Sink`], resumed with `Range` after a broken transfer where the caller allows it.

mod download;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error_chain;
use crate::reporter::{Reporter, Retry, seconds};

pub(crate) use download::{Download, Exchange, Outcome, Sink, Size, download};

/// How long to wait for a server, and how slow a transfer may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a server may stay silent (connecting, answering, mid-transfer), and how long
    /// the retries of one request may go on since it last made progress; a wait a server asks
    /// for is cut to what is left of it. By default 60 s.
    pub timeout: Duration,
    /// A body moving slower than this many bytes per second for [`Self::low_speed_time`] fails
    /// the attempt; 0 turns the check off. By default 1024 (1 KiB/s).
    pub low_speed_limit: u64,
    /// How long a transfer may stay under [`Self::low_speed_limit`]. By default 30 s.
    pub low_speed_time: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            low_speed_limit: 1024,
            low_speed_time: Duration::from_secs(30),
        }
    }
}

/// Parses a number of seconds above 0 (`30`, `0.5`), as the timeout flags take it.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("`{s}`: give a number of seconds above 0"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// How many times a failed request is tried again (since it last made progress).
const RETRIES: u32 = 4;

/// The longest wait a server's `Retry-After` gets.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Why one attempt at a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// The connection could not be made, or broke.
    #[error(transparent)]
    Http(reqwest::Error),
    /// Nothing came from the server, nor went to it, for the whole timeout.
    #[error("no answer for {} (--timeout)", seconds(*.0))]
    Silent(Duration),
    /// A body moved slower than the low-speed limit.
    #[error(
        "the transfer was slower than {limit} bytes/s for {} (--low-speed-limit, --low-speed-time)",
        seconds(*.time)
    )]
    Slow {
        /// The limit, in bytes per second.
        limit: u64,
        /// For how long.
        time: Duration,
    },
    /// The body ended before the size it was expected to have.
    #[error("the body ended after {received} of {expected} bytes")]
    Short {
        /// Bytes received.
        received: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// A range request was answered with other bytes than those asked for.
    #[error("asked for the bytes from {offset} on, got `{answer}`")]
    BadRange {
        /// The first byte asked for.
        offset: u64,
        /// The `Content-Range` answered.
        answer: String,
    },
    /// The server answered a status that may pass (429 Too Many Requests, 5xx).
    #[error("answered {status}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The wait the server asked for with `Retry-After`.
        retry_after: Option<Duration>,
        /// The answer, for the caller once the retries are spent.
        response: Box<reqwest::Response>,
    },
}

impl Fault {
    /// True when trying again may help (not a TLS handshake or certificate failure).
    pub fn transient(&self) -> bool {
        match self {
            Self::Http(e) => !(e.is_builder() || e.is_redirect() || is_tls_error(e)),
            _ => true,
        }
    }

    /// True when the server could not be reached at all (a connection was never made).
    pub fn unreached(&self) -> bool {
        matches!(self, Self::Http(e) if e.is_connect())
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One attempt's answer to `send`, watched by `meter`: silence past the timeout, a 429 or a
/// 5xx is a [`Fault`] to try again; a failure to send is what `on_error` makes of it (a
/// `Fault`, or the caller's error `X` for one no retry cures).
pub(crate) async fn attempt<E, X>(
    send: impl std::future::Future<Output = Result<reqwest::Response, E>>,
    meter: &Meter,
    timeouts: Timeouts,
    on_error: impl FnOnce(E) -> Result<Fault, X>,
) -> Result<Result<reqwest::Response, Fault>, X> {
    let response = tokio::select! {
        r = send => r,
        fault = meter.watch(timeouts) => return Ok(Err(fault)),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => return on_error(e).map(Err),
    };
    meter.touch();
    let status = response.status();
    if is_transient_status(status) {
        return Ok(Err(Fault::Status {
            status,
            retry_after: retry_after(response.headers()),
            response: Box::new(response),
        }));
    }
    Ok(Ok(response))
}

/// A failed answer's status classified: 429 and 5xx may pass.
pub fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP-date (RFC 9110 10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The TLS failure in `e`'s source chain, if any: a [`rustls::Error`] itself, or one an I/O
/// error carries (as tokio-rustls reports it, under hyper's and reqwest's connect errors).
fn tls_failure<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An I/O error's `source` skips the error it carries: descend into that one.
        current = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// True when TLS failed because the server's certificate did not verify.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(tls_failure(e), Some(rustls::Error::InvalidCertificate(_)))
}

/// True when the TLS handshake failed (a bad certificate, or a server that does not speak
/// TLS, whose answer is no TLS record): trying again will not help.
pub fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        tls_failure(e),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidMessage(_))
    )
}

/// The retries of one request or one transfer: at most 4 since it last made progress, 0.5 s,
/// 1 s, 2 s and 4 s apart, or as long as the server asks with `Retry-After` (at most 60 s),
/// while the time since the last progress stays within [`Timeouts::timeout`].
pub(crate) struct Retries<'a> {
    what: &'a str,
    host: &'a str,
    timeouts: Timeouts,
    reporter: &'a dyn Reporter,
    retries: u32,
    since: Instant,
}

impl<'a> Retries<'a> {
    /// Retries for a request to `host`, a `what` (`registry`, `index`), reported to `reporter`.
    pub(crate) fn new(
        what: &'a str,
        host: &'a str,
        timeouts: Timeouts,
        reporter: &'a dyn Reporter,
    ) -> Self {
        Self {
            what,
            host,
            timeouts,
            reporter,
            retries: 0,
            since: Instant::now(),
        }
    }

    /// The attempts made since the last progress.
    pub(crate) fn attempts(&self) -> u32 {
        self.retries + 1
    }

    /// The last attempt moved enough bytes to count as progress: the retries start over.
    pub(crate) fn progressed(&mut self) {
        self.retries = 0;
        self.since = Instant::now();
    }

    /// An upload attempt moved enough bytes to count as progress: the time left for the
    /// retries starts over, but not their count (what it sent is not kept).
    pub(crate) fn restart_clock(&mut self) {
        self.since = Instant::now();
    }

    /// Enough bytes for an attempt to count as progress: what the low-speed limit asks of
    /// [`Timeouts::low_speed_time`], at least 64 KiB.
    pub(crate) fn progress_bytes(&self) -> u64 {
        let t = self.timeouts;
        (t.low_speed_limit as f64 * t.low_speed_time.as_secs_f64()).max(65536.0) as u64
    }

    /// After `fault` in `request`: waits, tells the reporter, and returns true to try again;
    /// false when the fault is final or the retries are spent.
    pub(crate) async fn again(&mut self, request: &str, fault: &Fault) -> bool {
        if !fault.transient() || self.retries >= RETRIES {
            return false;
        }
        let remaining = self.timeouts.timeout.saturating_sub(self.since.elapsed());
        let asked = fault.retry_after();
        let delay = match asked {
            Some(asked) => asked.min(RETRY_AFTER_CAP).min(remaining),
            None => Duration::from_millis(250 << (self.retries + 1)),
        };
        if remaining.is_zero() || delay > remaining {
            return false;
        }
        self.retries += 1;
        self.reporter.retrying(&Retry {
            what: self.what,
            host: self.host,
            request,
            cause: &error_chain(fault),
            delay,
            asked,
            attempt: self.retries,
        });
        tracing::debug!(
            "{request}: {}; retry {} in {delay:?}",
            error_chain(fault),
            self.retries
        );
        tokio::time::sleep(delay).await;
        true
    }
}

/// The bytes one attempt moved, and when it last moved any, for [`Meter::watch`].
#[derive(Debug)]
pub(crate) struct Meter {
    start: Instant,
    bytes: AtomicU64,
    /// Nanoseconds from `start` to the last byte moved (or the answer's arrival).
    last: AtomicU64,
    /// A body is in transit: the low-speed limit applies.
    moving: AtomicBool,
}

impl Meter {
    /// A meter for an attempt starting now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            bytes: AtomicU64::new(0),
            last: AtomicU64::new(0),
            moving: AtomicBool::new(false),
        })
    }

    /// `n` bytes moved.
    pub(crate) fn moved(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.touch();
    }

    /// The bytes moved so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Something came from the server (an answer's headers).
    pub(crate) fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    /// A body starts (true) or stops (false) moving.
    pub(crate) fn set_moving(&self, moving: bool) {
        self.touch();
        self.moving.store(moving, Ordering::Relaxed);
    }

    /// Resolves with the fault when nothing moves for `t.timeout`, or when a body in transit
    /// moves slower than `t.low_speed_limit` over the last `t.low_speed_time`.
    pub(crate) async fn watch(&self, t: Timeouts) -> Fault {
        let tick = (t.timeout.min(t.low_speed_time) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        // (when, bytes so far) each tick while a body moves; at most low_speed_time / tick + 2.
        let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
        loop {
            tokio::time::sleep(tick).await;
            let now = Instant::now();
            let last = self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed));
            if now.saturating_duration_since(last) >= t.timeout {
                return Fault::Silent(t.timeout);
            }
            if t.low_speed_limit == 0 || !self.moving.load(Ordering::Relaxed) {
                samples.clear();
                continue;
            }
            let bytes = self.bytes();
            samples.push_back((now, bytes));
            while samples.len() > 1 && now.duration_since(samples[1].0) >= t.low_speed_time {
                samples.pop_front();
            }
            if let Some(&(then, before)) = samples.front() {
                let span = now.duration_since(then);
                let rate = bytes.saturating_sub(before) as f64 / span.as_secs_f64().max(1e-9);
                if span >= t.low_speed_time && rate < t.low_speed_limit as f64 {
                    return Fault::Slow {
                        limit: t.low_speed_limit,
                        time: t.low_speed_time,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn seconds_must_be_positive_numbers() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "x", "NaN", ""] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_crawling_body_is_slow_and_a_still_one_silent() {
        let t = Timeouts {
            timeout: Duration::from_secs(1),
            low_speed_limit: 1000,
            low_speed_time: Duration::from_millis(300),
        };
        let meter = Meter::new();
        meter.set_moving(true);
        let feeder = {
            let meter = meter.clone();
            async move {
                loop {
                    // 200 bytes/s: moving, but under the limit.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    meter.moved(10);
                }
            }
        };
        let start = Instant::now();
        let fault = tokio::select! {
            f = meter.watch(t) => f,
            () = feeder => unreachable!(),
        };
        assert!(matches!(fault, Fault::Slow { .. }), "{fault}");
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );

        let t = Timeouts {
            timeout: Duration::from_millis(300),
            ..t
        };
        let meter = Meter::new();
        let start = Instant::now();
        let fault = meter.watch(t).await;
        assert!(matches!(fault, Fault::Silent(_)), "{fault}");
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
