//! `conda-docker diff`: what changed from one image to another.

use std::process::ExitCode;

use crate::describe::diff::{ConfigChange, Diff};
use crate::describe::records::Package;
use crate::image::Cancel;
use anyhow::{Context, Result};

use crate::cli::output::outln;
use serde_json::Value;

use super::{read_image, remotes};
use crate::cli::progress::human_bytes;

/// Prints the differences between two images, as text or JSON; with `--exit-code`, exits 1
/// when they differ.
pub(crate) async fn diff(
    args: crate::cli::args::DiffArgs,
    cancel: Cancel,
    progress: &crate::cli::progress::Progress,
) -> Result<ExitCode> {
    let (remote, _) = remotes(&args.remote.registry)?;
    let a = read_image(&args.image_a, &args.remote, &remote, &cancel, progress).await?;
    let b = read_image(&args.image_b, &args.remote, &remote, &cancel, progress).await?;
    let diff = tokio::task::block_in_place(|| crate::describe::diff::diff_images(&a, &b, &cancel))
        .with_context(|| {
            format!(
                "reading the layers of `{}` and `{}`",
                args.image_a, args.image_b
            )
        })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&diff)?)?;
    } else {
        print_diff(&diff, &args.image_a, &args.image_b)?;
    }
    Ok(if args.exit_code && !diff.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_diff(diff: &Diff, a: &str, b: &str) -> Result<()> {
    outln!("--- A: {a}")?;
    outln!("+++ B: {b}")?;
    let p = &diff.packages;
    outln!(
        "packages: {} added, {} removed, {} changed",
        p.added.len(),
        p.removed.len(),
        p.changed.len()
    )?;
    // Name the environment only when the images have more than one.
    let mut prefixes: Vec<&str> = p
        .added
        .iter()
        .chain(&p.removed)
        .chain(p.changed.iter().map(|c| &c.new))
        .map(|p| p.prefix.as_str())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let at = |p: &Package| {
        if prefixes.len() > 1 {
            format!(" (in {})", p.prefix)
        } else {
            String::new()
        }
    };
    for p in &p.added {
        outln!("  + {} {} {}{}", p.name, p.version, p.build, at(p))?;
    }
    for p in &p.removed {
        outln!("  - {} {} {}{}", p.name, p.version, p.build, at(p))?;
    }
    for c in &p.changed {
        let (old, new) = (&c.old, &c.new);
        let mut line = format!(
            "  ~ {} {} {} → {} {}",
            new.name, old.version, old.build, new.version, new.build
        );
        if old.channel != new.channel {
            let channel = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
            line.push_str(&format!(
                " (channel {} → {})",
                channel(&old.channel),
                channel(&new.channel)
            ));
        } else if (&old.version, &old.build) == (&new.version, &new.build) {
            line.push_str(" (another sha256)");
        }
        outln!("{line}{}", at(new))?;
    }
    let l = &diff.layers;
    outln!(
        "layers: {} shared ({} by blob digest), {} added, {} removed{}; a registry holding A \
         receives {} of B's {}",
        l.shared.len(),
        l.shared_blobs,
        l.added.len(),
        l.removed.len(),
        if l.reordered { ", reordered" } else { "" },
        human_bytes(l.bytes_to_send),
        human_bytes(l.size),
    )?;
    for (sign, layers) in [("+", &l.added), ("-", &l.removed)] {
        for layer in layers {
            let what = if layer.packages.is_empty() {
                layer.created_by.clone().unwrap_or_default()
            } else {
                layer.packages.join(" ")
            };
            outln!(
                "  {sign} {}  {:>9}  {what}",
                &layer.diff_id.to_string()[..19],
                human_bytes(layer.size)
            )?;
        }
    }
    outln!("config: {} changed", diff.config.len())?;
    for c in &diff.config {
        outln!("  {}", config_line(c))?;
    }
    Ok(())
}

/// `~ env A: 1 → 2`, `+ label team=data`, `- exposed_port 80/tcp`.
fn config_line(c: &ConfigChange) -> String {
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (name, sep) = match &c.key {
        Some(k) => (format!("{} {k}", c.field), "="),
        None => (c.field.to_string(), " "),
    };
    match (&c.old, &c.new) {
        (Some(old), Some(new)) => format!("~ {name}: {} → {}", show(old), show(new)),
        (None, Some(new)) => format!("+ {name}{sep}{}", show(new)),
        (Some(old), None) => format!("- {name}{sep}{}", show(old)),
        (None, None) => format!("~ {name}"),
    }
}
