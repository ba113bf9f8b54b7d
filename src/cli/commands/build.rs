//! `conda-docker build`: packages and a base image in, images and a lockfile out.

use std::sync::Arc;

use crate::build::{Builder, Job};
use crate::conda::channel::Sources;
use crate::conda::place::Trim;
use crate::conda::plan::LayeringStrategy;
use crate::image::{Cancel, Reference};
use crate::input::Source;
use crate::platform;
use crate::pypi::index::Locations;
use crate::reporter::Reporter;
use crate::settings::{self, ImageSettings};
use crate::transport::{self, Location};
use anyhow::{Context, Result};

use super::parse_creds;
use crate::cli::args::{BuildArgs, Layering};
use crate::cli::progress::Progress;

/// The command line's image settings.
fn cli_settings(args: &BuildArgs) -> Result<ImageSettings> {
    let kv = |items: &[String]| -> Result<std::collections::BTreeMap<String, String>> {
        items
            .iter()
            .map(|s| settings::parse_key_value(s).map_err(anyhow::Error::msg))
            .collect()
    };
    let command = |s: &Option<String>| {
        s.as_deref()
            .map(settings::parse_command)
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    Ok(ImageSettings {
        env: kv(&args.env)?,
        entrypoint: command(&args.entrypoint)?,
        cmd: command(&args.cmd)?,
        workdir: args.workdir.clone(),
        labels: kv(&args.labels)?,
        annotations: kv(&args.annotations)?,
        expose: args.expose.clone(),
        user: args.user.clone(),
        writable_prefix: args.writable_prefix,
    })
}

/// Builds the image the arguments describe (one per platform) and writes every output.
pub(crate) async fn build(args: BuildArgs, cancel: Cancel, progress: Arc<Progress>) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let config = settings::config_file()?;
    let sources = Sources::configured(&args.mirrors, &args.channel_names, &cwd, config.as_deref())?;
    let trim =
        Trim::from_groups(&args.trim, args.no_trim).map_err(|e| anyhow::anyhow!("--trim: {e}"))?;
    let reporter: Arc<dyn Reporter> = progress.clone();
    let env = crate::env::Env::from_process();
    let base_registry = args.registry.tls.options(
        parse_creds(args.registry.base_creds.as_deref(), "--base-creds")?,
        &env,
    );
    let mut builder = Builder::new()
        .from_env()?
        .with_channels(args.channels.clone())
        .with_base(args.base.clone())
        .with_target_prefix(args.target_prefix.clone())
        .with_layering(match args.layering_strategy {
            Layering::Auto => LayeringStrategy::Auto,
            Layering::Layered => LayeringStrategy::Layered,
            Layering::Single => LayeringStrategy::Single,
        })
        .with_max_layers(args.max_layers)
        .with_trim(trim)
        .with_sources(sources)
        .with_sbom(!args.no_sbom)
        .with_allow_unhashed_pypi(args.allow_unhashed_pypi)
        .with_pypi_index(Locations::given(
            args.pypi_index_url.clone(),
            args.pypi_extra_index_url.clone(),
            &args.find_links,
            &cwd,
        ))
        .with_settings(cli_settings(&args)?)
        .with_cancel(cancel.clone())
        .with_reporter(reporter)
        .with_pypi_timeouts(base_registry.timeouts)
        .with_base_registry(base_registry);
    for vp in &args.virtual_packages {
        let (name, version) = settings::parse_key_value(vp).map_err(anyhow::Error::msg)?;
        builder = builder.with_virtual_package(name, version);
    }
    if let Some(dir) = args.registry.cache_dir.clone() {
        builder = builder.with_cache_dir(dir);
    }
    let job = Job {
        source: Source::from_parts(
            args.specs.clone(),
            args.file.clone(),
            &args.environment,
            args.prefix.clone(),
            args.name.clone(),
        )?,
        platforms: args
            .platforms
            .iter()
            .map(|p| platform::parse_subdir(p))
            .collect::<Result<_, _>>()?,
        images: args
            .images
            .iter()
            .map(|i| i.parse::<Reference>())
            .collect::<Result<_, _>>()?,
        outputs: args
            .outputs
            .iter()
            .map(|o| Location::parse_destination(o))
            .collect::<Result<_, _>>()?,
        registry: args.registry.tls.options(
            parse_creds(args.registry.creds.as_deref(), "--creds")?,
            &env,
        ),
        write: transport::WriteOptions {
            compression: args.compression.compression,
        },
        lock_output: args.lock_output.clone(),
        sbom_dir: args.sbom_dir.clone(),
    };
    if args.dry_run {
        let plans = tokio::select! {
            plans = builder.plan(&job) => plans?,
            () = cancel.cancelled() => anyhow::bail!("interrupted"),
        };
        return print_plans(&plans, args.json);
    }
    let outcome = tokio::select! {
        outcome = builder.run(&job) => outcome?,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    };
    let platforms: Vec<String> = outcome.built.iter().map(|(p, _)| p.to_string()).collect();
    for written in &outcome.written {
        report(&progress, written, &platforms);
    }
    if let Some(dir) = &job.sbom_dir {
        progress.note(&format!("wrote the SBOMs to {}", dir.display()));
    }
    if let Some(lock) = &job.lock_output {
        progress.note(&format!("wrote the lockfile {}", lock.display()));
    }
    Ok(())
}

/// Says what went to an output, and prints what CI pins: `REF@DIGEST` for a push (the
/// manifest's or index's digest), else the image ID (or the index's digest).
fn report(progress: &Progress, written: &transport::Written, platforms: &[String]) {
    let output = &written.location;
    let what = match (&written.index, written.images.as_slice()) {
        (None, [one]) => summary(one),
        (_, images) => {
            for (one, platform) in images.iter().zip(platforms) {
                progress.note(&format!("  {platform}: {}", summary(one)));
            }
            format!(
                "{} platforms, index {}",
                images.len(),
                written
                    .index
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )
        }
    };
    match (written.pushed(), &written.push) {
        (Some(pushed), Some(stats)) => {
            progress.note(&format!("pushed {output}: {what}; {}", push_summary(stats)));
            println!("{pushed}");
        }
        _ => {
            progress.note(&format!("wrote {output}: {what}"));
            if let Some(id) = written.id() {
                println!("{id}");
            }
        }
    }
    if !written.referrers.is_empty() {
        progress.note(&format!(
            "attached {} SBOMs to {output} as referrers",
            written.referrers.len()
        ));
    }
}

/// `N layers, SIZE, image ID DIGEST`.
fn summary(written: &transport::WrittenImage) -> String {
    let size: u64 = written.layers.iter().map(|l| l.size).sum();
    format!(
        "{} layers, {}, image ID {}",
        written.layers.len(),
        crate::cli::progress::human_bytes(size),
        written.config_digest
    )
}

/// What a push transferred.
fn push_summary(stats: &transport::registry::PushStats) -> String {
    format!(
        "{} blobs uploaded, {} already there, {} mounted, {} layers not compressed again",
        stats.uploaded, stats.skipped, stats.mounted, stats.compressed_reused
    )
}

/// Prints `--dry-run`'s plans: JSON, or a table a person reads.
fn print_plans(plans: &[crate::build::DryRun], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plans)?);
        return Ok(());
    }
    for plan in plans {
        println!(
            "{}: {} package layers ({:?}, budget {}) on {} base layers, plus the environment files",
            plan.platform,
            plan.plan.groups.len(),
            plan.plan.strategy,
            plan.budget,
            plan.base_layers
        );
        for (i, group) in plan.plan.groups.iter().enumerate() {
            println!(
                "  layer {:>3}  {:>10}  {}",
                i + 1,
                crate::cli::progress::human_bytes(group.bytes),
                group.packages.join(" ")
            );
        }
        let bytes: u64 = plan.downloads.iter().filter_map(|d| d.size).sum();
        println!(
            "  to download: {} packages, {}",
            plan.downloads.len(),
            crate::cli::progress::human_bytes(bytes)
        );
        for d in &plan.downloads {
            println!("    {} {}", d.package, d.url);
        }
        if !plan.pypi.is_empty() {
            let missing = plan.pypi.iter().filter(|w| !w.cached).count();
            println!("  PyPI wheels: {} ({missing} to download)", plan.pypi.len());
            for w in &plan.pypi {
                let cached = if w.cached { " (cached)" } else { "" };
                println!(
                    "    {}=={} {}{cached}",
                    w.pin.name, w.pin.version, w.pin.url
                );
            }
        }
    }
    Ok(())
}
