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

/// True when `reference` names a digest whose manifest `cache` holds: reading it needs no
/// registry.
fn pinned_in(reference: &Reference, cache: &BlobCache) -> bool {
    reference
        .digest()
        .is_some_and(|d| cache.manifest(d).is_some())
}
