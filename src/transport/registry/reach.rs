//! Whether the registries a build reads from and writes to can be reached at all, asked before
//! any work: one `GET /v2/` per distinct registry, all at once, with a short timeout and no
//! retries ([`Client::probe`]). A registry that is down or misspelled then fails the build in its
//! first second, with one error, rather than after the solve, the fetch and every retry.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::{Client, RegistryOptions};
use crate::image::Reference;
use crate::store::BlobCache;
use crate::transport::{Error, Location, OutputError};

/// The longest one registry's probe may take (or `--timeout`, if shorter). A registry silent
/// for that long is not judged by the probe: the requests that follow wait `--timeout` for it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A registry of the build that cannot be reached, found before any work.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The base image's registry.
    #[error("reading base image `{base}`")]
    Base {
        /// The base as given.
        base: String,
        /// Why it cannot be reached.
        #[source]
        source: Box<Error>,
    },
    /// An output's registry ([`OutputError::Write`]).
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// One registry to ask, and what to say when it cannot be reached.
struct Target<'a> {
    reference: &'a Reference,
    options: &'a RegistryOptions,
    /// The base as given, or `None` for an output.
    base: Option<&'a str>,
}

impl Target<'_> {
    /// What the probe is told apart by: the host, and the settings that change how it is reached.
    fn key(&self) -> (String, bool, Option<PathBuf>) {
        let o = self.options;
        (
            self.reference.registry().to_string(),
            o.insecure,
            o.cert_dir.clone(),
        )
    }

    fn unreachable(&self, source: Error) -> Unreachable {
        match self.base {
            Some(base) => Unreachable::Base {
                base: base.to_string(),
                source: Box::new(source),
            },
            None => Unreachable::Output(OutputError::Write {
                location: Location::Registry(self.reference.clone()).to_string(),
                source: Box::new(source),
            }),
        }
    }
}

/// Checks, before any work, that the registry of the base (`base` as given, reached with
/// `base_options`, else the defaults) and of each output in `outputs` (reached with `options`)
/// answers at all; each distinct registry is asked once, all at once. A base pinned by a digest
/// whose manifest is in `cache` needs no network and is not asked; a base that does not parse
/// is left to be refused where it is read.
///
/// # Errors
/// The first registry, the base's first, that surely cannot be reached (see [`Client::probe`]).
pub async fn check_reachable(
    outputs: &[Location],
    options: &RegistryOptions,
    base: &str,
    base_options: Option<&RegistryOptions>,
    cache: &BlobCache,
) -> Result<(), Unreachable> {
    let defaults = RegistryOptions::default();
    let base_location = Location::parse_source(base).ok();
    let mut targets = Vec::new();
    if let Some(Location::Registry(reference)) = &base_location
        && !pinned_in(reference, cache)
    {
        targets.push(Target {
            reference,
            options: base_options.unwrap_or(&defaults),
            base: Some(base),
        });
    }
    for output in outputs {
        if let Location::Registry(reference) = output {
            targets.push(Target {
                reference,
                options,
                base: None,
            });
        }
    }
    let mut seen = BTreeSet::new();
    targets.retain(|t| seen.insert(t.key()));
    let probes = targets.iter().map(|t| async move {
        let limit = PROBE_TIMEOUT.min(t.options.timeouts.timeout);
        let client = Client::new(t.reference.registry(), t.options)?;
        client.probe(limit).await
    });
    let answers = futures::future::join_all(probes).await;
    for (target, answer) in targets.iter().zip(answers) {
        answer.map_err(|e| target.unreachable(e))?;
    }
    Ok(())
}

/// Whether `reference`'s registry answers at all (as [`check_reachable`] asks each): for a
/// registry the build could do without (a layer cache), so that one that is down costs a
/// second and not every retry.
pub async fn probe(reference: &Reference, options: &RegistryOptions) -> Result<(), Error> {
    let limit = PROBE_TIMEOUT.min(options.timeouts.timeout);
    Client::new(reference.registry(), options)?
        .probe(limit)
        .await
}

/// True when `reference` names a digest whose manifest `cache` holds: reading it needs no
/// registry.
fn pinned_in(reference: &Reference, cache: &BlobCache) -> bool {
    reference
        .digest()
        .is_some_and(|d| cache.manifest(d).is_some())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A loopback registry host that accepts connections and counts them: each is closed at
    /// once (`hold` false) or kept open and silent.
    fn listener(hold: bool) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                if hold {
                    held.push(stream);
                }
            }
        });
        (addr, count)
    }

    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    }

    fn output(registry: &str, repo: &str) -> Location {
        Location::parse_destination(&format!("docker://{registry}/{repo}:1")).unwrap()
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let closed = closed_port();
        let options = RegistryOptions::default();
        let err = check_reachable(&[output(&closed, "app")], &options, "scratch", None, &cache)
            .await
            .unwrap_err();
        let text = crate::error_chain(&err);
        assert!(text.contains(&format!("writing {closed}/app:1")), "{text}");
        assert!(
            text.contains("cannot reach it (GET /v2/, 1 attempt)"),
            "{text}"
        );
        let base = format!("{closed}/base:1");
        let err = check_reachable(&[], &options, &base, None, &cache)
            .await
            .unwrap_err();
        assert!(matches!(err, Unreachable::Base { .. }), "{err}");
    }

    #[tokio::test]
    async fn silence_and_broken_connections_are_left_to_the_requests() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let mut options = RegistryOptions::default();
        options.timeouts.timeout = Duration::from_millis(300);
        let (silent, _) = listener(true);
        check_reachable(&[output(&silent, "app")], &options, "scratch", None, &cache)
            .await
            .unwrap();
        // Each registry once, however many outputs: HTTPS, then plain HTTP on loopback.
        let (closing, connections) = listener(false);
        let outputs = [output(&closing, "a"), output(&closing, "b")];
        check_reachable(&outputs, &options, "scratch", None, &cache)
            .await
            .unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_base_pinned_by_a_cached_digest_is_not_asked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let digest = cache.put_manifest(b"{}").unwrap();
        let base = format!("{}/base@{digest}", closed_port());
        let options = RegistryOptions::default();
        check_reachable(&[], &options, &base, None, &cache)
            .await
            .unwrap();
    }
}
