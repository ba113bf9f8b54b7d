//! `conda-docker cache info|prune|verify`: what the caches hold, removing it, checking it.

use std::time::Duration;

use crate::store::Store;
use anyhow::{Context, Result};

use crate::cli::output::outln;

use crate::cli::args::{CacheAction, CacheArgs};
use crate::cli::progress::human_bytes;

/// Shows or prunes the caches under `--cache-dir`, or shows a remote layer cache.
pub(crate) async fn cache(args: CacheArgs, cancel: crate::image::Cancel) -> Result<()> {
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
        CacheAction::Remote {
            reference,
            platform,
            creds,
            tls,
            json,
        } => {
            remote(
                &store,
                &reference,
                &platform,
                creds.as_deref(),
                &tls,
                json,
                &cancel,
            )
            .await?
        }
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

/// Prints what the remote layer cache `reference` holds.
async fn remote(
    store: &Store,
    reference: &str,
    platform: &str,
    creds: Option<&str>,
    tls: &crate::cli::args::TlsArgs,
    json: bool,
    cancel: &crate::image::Cancel,
) -> Result<()> {
    let env = crate::env::Env::from_process();
    let reference: crate::image::Reference = reference
        .trim_start_matches("docker://")
        .parse()
        .with_context(|| format!("`{reference}` is no image reference"))?;
    let platform = crate::platform::oci_platform(crate::platform::parse_subdir(platform)?);
    let remote = crate::transport::Remote {
        options: tls.options(super::parse_creds(creds, "--creds")?, &env),
        cache: store.blobs(),
    };
    let session = crate::transport::Session::new(cancel).with_remote(&remote);
    let summaries = crate::builder::remote::summarize(&reference, &platform, &session).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&summaries)?)?;
        return Ok(());
    }
    for s in &summaries {
        outln!(
            "{}  {} layers  {}  {} packages  {}",
            s.reference,
            s.layers,
            human_bytes(s.bytes),
            s.packages,
            s.created.as_deref().unwrap_or("-")
        )?;
    }
    let total: u64 = summaries.iter().map(|s| s.bytes).sum();
    outln!(
        "{} entries, {} of layers (a layer several name is counted each time)",
        summaries.len(),
        human_bytes(total)
    )?;
    Ok(())
}
