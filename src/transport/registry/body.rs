//! What goes into and comes out of registry requests: where a download is put ([`Sink`]), a
//! blob upload's body ([`Upload`]), streamed from disk and counted for the watchdog.

use std::sync::Arc;
use std::task::Poll;

use reqwest::Method;

use crate::http::Meter;
use crate::image::Error;
use crate::image::layer::FileRange;

/// The largest manifest, index or tag list read (containerd's limit for manifests).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// Where a [`Client::download`](super::Client::download) puts the bytes: appended to, or emptied to start again.
pub trait Sink: Send {
    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// Forgets everything appended, for a download that starts again from the first byte.
    fn restart(&mut self) -> Result<(), Error>;
    /// How many bytes it holds.
    fn received(&self) -> u64;
}

/// A [`Sink`] in memory, for manifests and tag lists, refusing more than [`MAX_MANIFEST`].
#[derive(Debug, Default)]
pub struct InMemory(pub Vec<u8>);

impl Sink for InMemory {
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.0.len() as u64 + bytes.len() as u64 > MAX_MANIFEST {
            return Err(Error::TooLarge {
                what: "what the registry sent for a manifest, index or tag list",
                limit: MAX_MANIFEST,
            });
        }
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn restart(&mut self) -> Result<(), Error> {
        self.0.clear();
        Ok(())
    }

    fn received(&self) -> u64 {
        self.0.len() as u64
    }
}

/// The body of a blob upload.
#[derive(Clone, Debug)]
pub enum Upload {
    /// A byte range of a file, streamed from disk.
    File(FileRange),
    /// Bytes in memory (a config).
    Bytes(Vec<u8>),
}

/// `METHOD /path` of a request to `url`, without its query (upload URLs carry state there).
pub(crate) fn request_name(method: &Method, url: &str) -> String {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url);
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    format!("{method} {path}")
}

/// A streaming request body reading `range` from disk, counting what it sends on `meter`.
pub(crate) fn file_body(range: &FileRange, meter: Arc<Meter>) -> reqwest::Body {
    use std::io::{Seek, SeekFrom};
    let opened = std::fs::File::open(&range.path).and_then(|mut file| {
        file.seek(SeekFrom::Start(range.offset))?;
        Ok(file)
    });
    match opened {
        Ok(file) => {
            let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), range.size);
            let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
            reqwest::Body::wrap_stream(Metered {
                inner: stream,
                meter,
            })
        }
        Err(e) => {
            reqwest::Body::wrap_stream(futures::stream::once(
                async move { Err::<bytes::Bytes, _>(e) },
            ))
        }
    }
}

/// A body stream that counts what it yields on a [`Meter`], moving until it ends.
struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> futures::Stream for Metered<S>
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = std::pin::Pin::new(&mut this.inner).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                this.meter.set_moving(true);
                this.meter.moved(chunk.len());
            }
            Poll::Ready(_) => this.meter.set_moving(false),
            Poll::Pending => {}
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_without_host_or_query() {
        assert_eq!(
            request_name(
                &Method::PUT,
                "http://127.0.0.1:5000/v2/app/blobs/uploads/u-1?_state=x&digest=sha256:00"
            ),
            "PUT /v2/app/blobs/uploads/u-1"
        );
        assert_eq!(request_name(&Method::GET, "/v2/"), "GET /v2/");
    }

    #[test]
    fn manifests_in_memory_are_bounded() {
        let mut sink = InMemory::default();
        sink.append(&[0; 1024]).unwrap();
        let err = sink.append(&vec![0; MAX_MANIFEST as usize]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    limit: MAX_MANIFEST,
                    ..
                }
            ),
            "{err}"
        );
        sink.restart().unwrap();
        assert_eq!(sink.received(), 0);
    }
}
