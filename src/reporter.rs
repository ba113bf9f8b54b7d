//! Progress events, so a front end can show bars without the library knowing how.

use std::fmt;
use std::time::Duration;

use crate::image::{Digest, Layer, WrittenLayer};

/// The steps of a build, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the base image.
    ReadBase,
    /// Fetching repodata and solving the specs.
    Solve,
    /// Fetching packages and reading what they hold.
    Install,
    /// Resolving and fetching PyPI wheels.
    Pypi,
    /// Making the layers no cache has, from their packages.
    Compose,
    /// Writing layers, config and manifest to an output.
    Write,
}

/// Receives progress events; every method does nothing by default.
pub trait Reporter: Send + Sync {
    /// A stage began.
    fn stage_started(&self, _stage: Stage, _message: &str) {}
    /// A stage ended.
    fn stage_finished(&self, _stage: Stage, _message: &str) {}
    /// Packages to download and install.
    fn install_started(&self, _packages: usize) {}
    /// The bytes downloaded so far in this install.
    fn bytes_downloaded(&self, _bytes: u64) {}
    /// One package was fetched and read.
    fn package_installed(&self, _name: &str) {}
    /// `layers` layers are to be made from their packages.
    fn compose_started(&self, _layers: usize) {}
    /// One layer was made (`description` says which), `bytes` long.
    fn layer_made(&self, _description: &str, _bytes: u64) {}
    /// Something the user should know that does not stop the build (a clobbered path).
    fn warning(&self, _message: &str) {}
    /// Layer `index` of `total` is about to be written.
    fn layer_started(&self, _index: usize, _total: usize, _layer: &Layer) {}
    /// Layer `index` was written.
    fn layer_finished(&self, _index: usize, _layer: &Layer, _written: &WrittenLayer) {}
    /// `done` of the `total` bytes of blob `digest` have come from a registry.
    fn blob_downloaded(&self, _digest: &Digest, _done: u64, _total: u64) {}
    /// A request to a registry or an index failed and is tried again after `retry.delay`.
    fn retrying(&self, _retry: &Retry<'_>) {}
    /// Blob `digest` is now in `repository` (`REGISTRY/REPO`), uploaded or mounted, though no
    /// manifest there may name it yet.
    fn blob_pushed(&self, _repository: &str, _digest: &Digest) {}
    /// A manifest or an index was put in `repository` as `target` (a tag, or its own digest).
    fn manifest_pushed(&self, _repository: &str, _target: &str) {}
}

/// A failed request to a server that is tried again; its `Display` is a line for people.
#[derive(Clone, Copy, Debug)]
pub struct Retry<'a> {
    /// The kind of server: `registry`, `index`.
    pub what: &'a str,
    /// The server's host (`HOST[:PORT]`).
    pub host: &'a str,
    /// What was asked: `GET /v2/base/blobs/sha256:...`.
    pub request: &'a str,
    /// Why it failed, with its causes.
    pub cause: &'a str,
    /// How long we wait before the next attempt.
    pub delay: Duration,
    /// The wait the server asked for with `Retry-After`, when it did.
    pub asked: Option<Duration>,
    /// Which retry this is (1 for the first).
    pub attempt: u32,
}

impl fmt::Display for Retry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            what,
            host,
            request,
            cause,
            delay,
            attempt,
            ..
        } = self;
        match self.asked {
            Some(asked) if asked > *delay => write!(
                f,
                "{what} `{host}` asked us to wait {} ({cause}); waiting {}, as long as \
                 --timeout allows, before {request} again",
                seconds(asked),
                seconds(*delay)
            ),
            Some(asked) => write!(
                f,
                "{what} `{host}` asked us to wait {} ({cause}); waiting before {request} \
                 again",
                seconds(asked)
            ),
            None => write!(
                f,
                "{request} on `{host}`: {cause}; retry {attempt} in {}",
                seconds(*delay)
            ),
        }
    }
}

/// A duration as people read it: `2 s`, `0.5 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// A reporter that ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {}
