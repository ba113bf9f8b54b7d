//! `conda-docker lock`: the lockfile an image was built from, read back from the image.

use std::sync::Arc;

use crate::describe::lock::{ImageLock, LockSource};
use crate::image::Cancel;
use anyhow::{Context, Result};

use super::{read_image, remotes};
use crate::cli::output::outln;
use crate::cli::progress::Progress;

/// Reads the image's environment and writes it as the lockfile `-o` names.
pub(crate) async fn lock(
    args: crate::cli::args::LockArgs,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<()> {
    let output = &args.output;
    crate::conda::lock::check_destination(output)?;
    let (remote, _) = remotes(&args.remote.registry)?;
    let image = read_image(
        &args.image,
        &args.remote,
        &remote,
        &cancel,
        progress.as_ref(),
    )
    .await?;
    let full_records = crate::conda::lock::writes_conda_lock(output);
    let lock = tokio::task::block_in_place(|| {
        ImageLock::read(&image, args.prefix.as_deref(), full_records, &cancel)
    })
    .with_context(|| format!("reading the lockfile of `{}`", args.image))?;
    lock.write(output)
        .with_context(|| format!("writing `{}`", output.display()))?;
    let from = match lock.source {
        LockSource::PackageList => "its package list",
        LockSource::Records => "its conda-meta records",
    };
    progress.note(&format!(
        "wrote {}: {} packages of {} ({}), from {from}",
        output.display(),
        lock.records.len(),
        lock.prefix,
        lock.subdir
    ));
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&as_json(&lock, output))?)?;
    }
    Ok(())
}

/// What `lock --json` prints: the file written and the packages it pins.
fn as_json(lock: &ImageLock, output: &std::path::Path) -> serde_json::Value {
    let packages: Vec<serde_json::Value> = lock
        .records
        .iter()
        .map(|r| {
            let p = &r.package_record;
            serde_json::json!({
                "name": p.name.as_normalized(),
                "version": p.version.to_string(),
                "build": p.build,
                "channel": r.channel,
                "url": r.url.as_str(),
                "sha256": p.sha256.map(hex::encode),
            })
        })
        .collect();
    serde_json::json!({
        "lockfile": output,
        "prefix": lock.prefix,
        "platform": lock.subdir.to_string(),
        "from": match lock.source {
            LockSource::PackageList => "package-list",
            LockSource::Records => "records",
        },
        "packages": packages,
    })
}
