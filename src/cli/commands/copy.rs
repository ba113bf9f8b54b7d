//! `conda-docker copy`: an image from one transport to another.

use std::sync::Arc;

use crate::image::{Cancel, Reference};
use crate::reporter::Reporter;
use crate::transport::{self, Location, Publishable, Session};
use anyhow::{Context, Result};

use crate::cli::output::outln;

use super::{read_image, remotes};
use crate::cli::progress::Progress;

/// Reads the source image and writes it to the destination.
pub(crate) async fn copy(
    args: crate::cli::args::CopyArgs,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<()> {
    let (src_remote, dst_remote) = remotes(&args.remote.registry)?;
    let destination = Location::parse_destination(&args.destination)?;
    destination.check_writable()?;
    let tags = args
        .images
        .iter()
        .map(|i| i.parse::<Reference>())
        .collect::<Result<Vec<_>, _>>()?;
    let image = read_image(
        &args.source,
        &args.remote,
        &src_remote,
        &cancel,
        progress.as_ref(),
    )
    .await?;
    let reporter: Arc<dyn Reporter> = progress.clone();
    let options = transport::WriteOptions {
        compression: args.compression.compression,
    };
    let ctx = Session::new(&cancel)
        .with_remote(&dst_remote)
        .with_reporter(reporter.as_ref())
        .write(&tags, options);
    let written = tokio::select! {
        w = transport::write(Publishable::Image(&image), &destination, &ctx) => w,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    }
    .with_context(|| format!("writing {destination}"))?;
    let written = written
        .images
        .first()
        .context("the write reported no image")?;
    progress.note(&format!(
        "copied {} to {destination}: {} layers",
        args.source,
        written.layers.len()
    ));
    match (&destination, &written.manifest_digest) {
        (Location::Registry(r), Some(d)) => outln!("{}@{d}", r.familiar_tagged())?,
        _ => outln!("{}", written.config_digest)?,
    }
    Ok(())
}
