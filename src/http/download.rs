//! The one download loop, for the registry client and the PyPI index client alike: a GET whose
//! body goes into a restartable [`Sink`], retried by [`Retries`] and watched by a [`Meter`].
//! After a broken or crawling transfer it asks for the rest with `Range` (when the caller
//! allows it) and appends it when the server answers `206` from the right byte; otherwise it
//! empties the sink and takes the whole body again. What a request sends (its headers, its
//! credentials, the answer to an auth challenge) is the caller's [`Exchange`].

use std::future::Future;

use reqwest::header::{CONTENT_RANGE, HeaderMap};
use reqwest::{Response, StatusCode};
use url::Url;

use super::{Fault, Meter, Retries, Timeouts};

/// Where a download puts the bytes: appended to, or emptied to start again; its failures are
/// the caller's errors `E`.
pub(crate) trait Sink<E>: Send {
    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]) -> Result<(), E>;
    /// Forgets everything appended, for a download that starts again from the first byte.
    fn restart(&mut self) -> Result<(), E>;
    /// How many bytes it holds.
    fn received(&self) -> u64;
}

/// A body in memory (a page, a small file), bounded by the download's [`Size`].
impl<E> Sink<E> for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn restart(&mut self) -> Result<(), E> {
        self.clear();
        Ok(())
    }
    fn received(&self) -> u64 {
        self.len() as u64
    }
}

/// How large a body is, as far as the caller knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Size {
    /// Exactly this many bytes (a descriptor's size): more is an error, fewer a transfer to
    /// resume.
    Exactly(u64),
    /// At most this many bytes (a cap): more, or a `Content-Length` above it, is an error.
    AtMost(u64),
    /// Whatever the server sends (the sink may bound it).
    Any,
}

/// How one request is made, by the caller: its method, URL, headers and credentials.
pub(crate) trait Exchange: Sync {
    /// The caller's error.
    type Error: Send;

    /// One attempt at the request, with `Range: <range>` when given, watched by `meter`:
    /// `Ok(Err(fault))` for a failure that trying again may cure (a broken connection,
    /// silence, 429, 5xx); `Ok(Ok(response))` for any other answer.
    fn send(
        &self,
        range: Option<&str>,
        meter: &Meter,
    ) -> impl Future<Output = Result<Result<Response, Fault>, Self::Error>> + Send;

    /// The error for a body from `url` longer than the `limit` of [`Size`].
    fn too_large(&self, url: &Url, limit: u64) -> Self::Error;
}

/// What a download is: the request's name in messages (`GET /v2/...`), the body's size,
/// whether a broken transfer may be resumed with `Range`, and who hears the progress.
pub(crate) struct Download<'a> {
    /// The request, as messages and [`Retries`] name it.
    pub request: &'a str,
    /// How large the body is.
    pub size: Size,
    /// Ask for the rest of a broken transfer with `Range` (else start it again).
    pub resume: bool,
    /// The watchdog's limits.
    pub timeouts: Timeouts,
    /// Hears the bytes held after each chunk (0 when the sink is emptied).
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// How a download ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The whole body is in the sink; the answer that ended it (none when what the sink held
    /// was already the whole).
    Complete(Option<Response>),
    /// The server answered a failure that is not tried again (404, 401, ...), as it is.
    Refused(Response),
    /// The retries are spent: the last attempt's `fault`, after `attempts` attempts.
    Failed {
        /// The request as messages name it (with the byte it resumed from, if any).
        request: String,
        /// How many attempts were made since the last progress.
        attempts: u32,
        /// Why the last attempt failed.
        fault: Fault,
    },
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/SIZE` answer.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split_once('-')?.0.trim().parse().ok()
}

/// Downloads what `x` asks for into `sink` as `how` says, retrying with `retries` what may
/// pass; see the module's documentation.
pub(crate) async fn download<X: Exchange, S: Sink<X::Error> + ?Sized>(
    x: &X,
    sink: &mut S,
    how: &Download<'_>,
    retries: &mut Retries<'_>,
) -> Result<Outcome, X::Error> {
    let mut ranges = how.resume;
    loop {
        let offset = sink.received();
        if offset > 0 && how.size == Size::Exactly(offset) {
            return Ok(Outcome::Complete(None));
        }
        let range = (ranges && offset > 0).then(|| format!("bytes={offset}-"));
        let request = match &range {
            Some(_) => format!("{} from byte {offset}", how.request),
            None => how.request.to_string(),
        };
        let meter = Meter::new();
        let fault = match x.send(range.as_deref(), &meter).await? {
            Err(fault) => fault,
            Ok(mut response) => {
                let status = response.status();
                let from_offset = range.is_some()
                    && status == StatusCode::PARTIAL_CONTENT
                    && range_start(response.headers()) == Some(offset);
                let unusable = range.is_some()
                    && (status == StatusCode::RANGE_NOT_SATISFIABLE
                        || (status == StatusCode::PARTIAL_CONTENT && !from_offset));
                if offset > 0 && !from_offset && (status.is_success() || unusable) {
                    // The whole body again (200), or other bytes than asked for.
                    sink.restart()?;
                    (how.progress)(0);
                }
                if unusable {
                    ranges = false;
                    let answer = response
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .map_or_else(|| status.to_string(), str::to_string);
                    Fault::BadRange { offset, answer }
                } else if !status.is_success() {
                    return Ok(Outcome::Refused(response));
                } else {
                    let before = sink.received();
                    match read_body(x, &mut response, sink, how, &meter).await? {
                        Ok(()) => return Ok(Outcome::Complete(Some(response))),
                        Err(fault) => {
                            if sink.received() - before >= retries.progress_bytes() {
                                retries.progressed();
                            }
                            fault
                        }
                    }
                }
            }
        };
        if !retries.again(&request, &fault).await {
            return Ok(Outcome::Failed {
                request,
                attempts: retries.attempts(),
                fault,
            });
        }
    }
}

/// Reads the body of `response` into `sink` (within `how.size`), watched by `meter`.
async fn read_body<X: Exchange, S: Sink<X::Error> + ?Sized>(
    x: &X,
    response: &mut Response,
    sink: &mut S,
    how: &Download<'_>,
    meter: &Meter,
) -> Result<Result<(), Fault>, X::Error> {
    let limit = match how.size {
        Size::Exactly(n) | Size::AtMost(n) => Some(n),
        Size::Any => None,
    };
    if let Size::AtMost(cap) = how.size
        && response
            .content_length()
            .is_some_and(|n| sink.received().saturating_add(n) > cap)
    {
        return Err(x.too_large(response.url(), cap));
    }
    meter.set_moving(true);
    let read = async {
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Ok(Err(Fault::Http(e))),
            };
            meter.moved(chunk.len());
            if let Some(limit) = limit
                && sink.received() + chunk.len() as u64 > limit
            {
                return Err(x.too_large(response.url(), limit));
            }
            sink.append(&chunk)?;
            (how.progress)(sink.received());
        }
        Ok(match how.size {
            Size::Exactly(expected) if sink.received() < expected => Err(Fault::Short {
                received: sink.received(),
                expected,
            }),
            _ => Ok(()),
        })
    };
    tokio::select! {
        r = read => r,
        fault = meter.watch(how.timeouts) => Ok(Err(fault)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_starts() {
        let mut headers = HeaderMap::new();
        assert_eq!(range_start(&headers), None);
        headers.insert(CONTENT_RANGE, "bytes 1000-2616204/2616205".parse().unwrap());
        assert_eq!(range_start(&headers), Some(1000));
        headers.insert(CONTENT_RANGE, "bytes */2616205".parse().unwrap());
        assert_eq!(range_start(&headers), None);
    }
}
