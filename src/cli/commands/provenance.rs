//! `conda-docker provenance`: the provenance statement of an image's conda environment.

use anyhow::{Context, Result};

use super::{read_image, remotes};
use crate::cli::args::ProvenanceArgs;
use crate::image::Cancel;

/// Prints the provenance statement the image holds.
pub(crate) async fn provenance(
    args: ProvenanceArgs,
    cancel: Cancel,
    progress: &crate::cli::progress::Progress,
) -> Result<()> {
    let (remote, _) = remotes(&args.remote.registry)?;
    let image = read_image(&args.image, &args.remote, &remote, &cancel, progress).await?;
    let statement = tokio::task::block_in_place(|| {
        crate::describe::provenance::read_from_image(&image, &cancel)
    })
    .with_context(|| format!("the provenance of `{}`", args.image))?
    .with_context(|| {
        format!(
            "`{}` holds no provenance statement (`$CONDA_PREFIX/{}`): only images \
                     conda-docker built with SBOMs have one",
            args.image,
            crate::describe::provenance::FILE
        )
    })?;
    crate::cli::output::bytes(&statement)?;
    Ok(())
}
