//! `conda-docker cache info|prune|verify`: what the caches hold, removing it, checking it.

use std::time::Duration;

use crate::store::Store;
use anyhow::{Context, Result};

use crate::cli::output::outln;

use crate::cli::args::{CacheAction, CacheArgs};
use crate::cli::progress::human_bytes;

/// Shows or prunes the caches under `--cache-dir`.
pub(crate) fn cache(args: CacheArgs) -> Result<()> {
    let store = Store::at(args.cache_dir.as_deref(), &crate::env::Env::from_process());
    match args.action {
        CacheAction::Info { json } => {
            let usage = store.usage().context("reading the cache")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&usage)?)?;
            } else {
                for u in usage {
                    outln!(
                        "{:<17} {:>7} entries {:>10}  {}",
                        u.name,
                        u.entries,
                        human_bytes(u.bytes),
                        u.path.display()
                    )?;
                }
            }
        }
        CacheAction::Prune { older_than, all } => {
            let age = if all {
                None
            } else {
                Some(Duration::from_secs(
                    older_than.unwrap_or(0).saturating_mul(86_400),
                ))
            };
            let waiting = || {
                crate::cli::output::errln!(
                    "waiting for the builds using the cache to finish before pruning it"
                );
            };
            let (files, bytes) = store.prune(age, waiting).context("pruning the cache")?;
            outln!("removed {files} entries, {}", human_bytes(bytes))?;
        }
        CacheAction::Verify { repair } => verify(&store, repair)?,
    }
    Ok(())
}

/// `cache verify`: one line per damaged entry, then a summary; damage left in place fails.
fn verify(store: &Store, repair: bool) -> Result<()> {
    let verified = store.verify(repair).context("verifying the cache")?;
    for d in &verified.damaged {
        let what = if d.removed { "removed" } else { "damaged" };
        outln!("{what}: {}: {}", d.path.display(), d.reason)?;
    }
    let left = verified.damaged.iter().filter(|d| !d.removed).count();
    outln!(
        "checked {} entries in {}: {} damaged, {} removed",
        verified.entries,
        store.root().display(),
        verified.damaged.len(),
        verified.damaged.len() - left
    )?;
    if left > 0 {
        anyhow::bail!(
            "{left} damaged cache entries: run `conda-docker cache verify --repair` to remove \
             them (the next build makes or fetches them again)"
        );
    }
    Ok(())
}
