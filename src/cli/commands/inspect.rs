//! `conda-docker inspect`: layers, packages, config and size of an image.

use crate::image::Cancel;
use anyhow::{Context, Result};

use crate::cli::output::outln;

use super::{read_image, remotes};

/// Prints what the image holds, as a table or JSON.
pub(crate) async fn inspect(
    args: crate::cli::args::InspectArgs,
    cancel: Cancel,
    progress: &crate::cli::progress::Progress,
) -> Result<()> {
    let (remote, _) = remotes(&args.remote.registry)?;
    let image = read_image(&args.image, &args.remote, &remote, &cancel, progress).await?;
    let report = tokio::task::block_in_place(|| crate::describe::inspect::inspect(&image, &cancel))
        .with_context(|| format!("reading the layers of `{}`", args.image))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let c = &report.config;
    outln!("image     {}", args.image)?;
    outln!("platform  {}", report.platform)?;
    outln!("created   {}", c.created.as_deref().unwrap_or("-"))?;
    outln!(
        "size      {} stored, {} uncompressed, {} layers",
        crate::cli::progress::human_bytes(report.total_size),
        crate::cli::progress::human_bytes(report.total_uncompressed_size),
        report.layers.len()
    )?;
    let join = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| "-".into())
    };
    outln!("entrypoint {}", join(&c.config.entrypoint))?;
    outln!("cmd       {}", join(&c.config.cmd))?;
    if let Some(user) = &c.config.user {
        outln!("user      {user}")?;
    }
    if let Some(dir) = &c.config.working_dir {
        outln!("workdir   {dir}")?;
    }
    for e in c.config.env.iter().flatten() {
        outln!("env       {e}")?;
    }
    for (k, v) in c.config.labels.iter().flatten() {
        outln!("label     {k}={v}")?;
    }
    outln!()?;
    outln!(
        "{:>3}  {:<19}  {:>9}  {:>9}  contents",
        "#",
        "diff_id",
        "stored",
        "size"
    )?;
    for (i, l) in report.layers.iter().enumerate() {
        let pypi = l.pypi.iter().map(|d| format!("pypi:{d}"));
        let named: Vec<String> = l.packages.iter().cloned().chain(pypi).collect();
        let what = if named.is_empty() {
            l.created_by
                .clone()
                .unwrap_or_else(|| format!("{} entries", l.entries))
        } else {
            named.join(" ")
        };
        outln!(
            "{:>3}  {:<19}  {:>9}  {:>9}  {what}",
            i + 1,
            &l.diff_id.to_string()[..19],
            l.size
                .map(crate::cli::progress::human_bytes)
                .unwrap_or_else(|| "-".into()),
            crate::cli::progress::human_bytes(l.uncompressed_size),
        )?;
    }
    Ok(())
}
