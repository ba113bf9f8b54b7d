//! `conda-docker cache info|prune`: what the caches hold, and removing it.

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
            let (files, bytes) = store.prune(age).context("pruning the cache")?;
            outln!("removed {files} entries, {}", human_bytes(bytes))?;
        }
    }
    Ok(())
}
