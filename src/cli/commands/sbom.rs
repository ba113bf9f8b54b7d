//! `conda-docker sbom`: the SBOM of an image's conda environment.

use crate::describe::sbom::Format;
use crate::image::Cancel;
use anyhow::{Context, Result};

use super::{read_image, remotes};
use crate::cli::args::{SbomArgs, SbomFormat};

/// Prints the SBOM the image holds.
pub(crate) async fn sbom(
    args: SbomArgs,
    cancel: Cancel,
    progress: &crate::cli::progress::Progress,
) -> Result<()> {
    let format = match args.format {
        SbomFormat::Spdx => Format::Spdx,
        SbomFormat::Cyclonedx => Format::CycloneDx,
    };
    let (remote, _) = remotes(&args.remote.registry)?;
    let image = read_image(&args.image, &args.remote, &remote, &cancel, progress).await?;
    let document =
        tokio::task::block_in_place(|| crate::describe::sbom::of_image(&image, format, &cancel))
            .with_context(|| format!("the SBOM of `{}`", args.image))?;
    crate::cli::output::bytes(&document)?;
    Ok(())
}
