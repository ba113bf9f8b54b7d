//! `conda-docker inspect`: layers, packages, config and size of an image.

use crate::image::Cancel;
use anyhow::{Context, Result};

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
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let c = &report.config;
    println!("image     {}", args.image);
    println!("platform  {}", report.platform);
    println!("created   {}", c.created.as_deref().unwrap_or("-"));
    println!(
        "size      {} stored, {} uncompressed, {} layers",
        crate::cli::progress::human_bytes(report.total_size),
        crate::cli::progress::human_bytes(report.total_uncompressed_size),
        report.layers.len()
    );
    let join = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| "-".into())
    };
    println!("entrypoint {}", join(&c.config.entrypoint));
    println!("cmd       {}", join(&c.config.cmd));
    if let Some(user) = &c.config.user {
        println!("user      {user}");
    }
    if let Some(dir) = &c.config.working_dir {
        println!("workdir   {dir}");
    }
    for e in c.config.env.iter().flatten() {
        println!("env       {e}");
    }
    for (k, v) in c.config.labels.iter().flatten() {
        println!("label     {k}={v}");
    }
    println!();
    println!(
        "{:>3}  {:<19}  {:>9}  {:>9}  contents",
        "#", "diff_id", "stored", "size"
    );
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
        println!(
            "{:>3}  {:<19}  {:>9}  {:>9}  {what}",
            i + 1,
            &l.diff_id.to_string()[..19],
            l.size
                .map(crate::cli::progress::human_bytes)
                .unwrap_or_else(|| "-".into()),
            crate::cli::progress::human_bytes(l.uncompressed_size),
        );
    }
    Ok(())
}
