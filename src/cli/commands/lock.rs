//! `conda-docker lock`: the lockfile an image was built from, read back from the image.

use std::sync::Arc;

use crate::describe::lock::{ImageLock, LockSource};
use crate::image::Cancel;
use anyhow::{Context, Result};

use super::{read_image, remotes};
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
    Ok(())
}
