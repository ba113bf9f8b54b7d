//! `conda-docker build`: packages and a base image in, images and a lockfile out. The flags
//! fill a [`BuildRequest`]; the library resolves it and builds.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::builder::Context;
use crate::env::Env;
use crate::image::Cancel;
use crate::reporter::Reporter;
use crate::request::BuildRequest;
use crate::settings::{self, ImageSettings};
use crate::transport;
use anyhow::Result;

use crate::cli::output::outln;

use crate::cli::args::{BuildArgs, Layering};
use crate::cli::progress::Progress;

/// `KEY=VALUE` items as a map.
fn key_values(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|s| settings::parse_key_value(s).map_err(anyhow::Error::msg))
        .collect()
}

/// A command as the shell would split it (`--entrypoint`, `--cmd`).
fn command(text: Option<&str>) -> Result<Option<Vec<String>>> {
    text.map(settings::parse_command)
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// The request the flags describe.
fn request(args: &BuildArgs) -> Result<BuildRequest> {
    let tls = &args.registry.tls;
    Ok(BuildRequest {
        specs: args.specs.clone(),
        file: args.file.clone(),
        environment: args.environment.clone(),
        prefix: args.prefix.clone(),
        name: args.name.clone(),
        channels: args.channels.clone(),
        mirrors: args.mirrors.clone(),
        channel_names: args.channel_names.clone(),
        platforms: args.platforms.clone(),
        base: args.base.clone(),
        images: args.images.clone(),
        outputs: args.outputs.clone(),
        target_prefix: args.target_prefix.clone(),
        layering_strategy: match args.layering_strategy {
            Layering::Auto => "auto",
            Layering::Layered => "layered",
            Layering::Single => "single",
        }
        .into(),
        max_layers: args.max_layers,
        trim: args.trim.clone(),
        no_trim: args.no_trim,
        compression: args.compression.compression.to_string(),
        image: ImageSettings {
            env: key_values(&args.env)?,
            entrypoint: command(args.entrypoint.as_deref())?,
            cmd: command(args.cmd.as_deref())?,
            workdir: args.workdir.clone(),
            labels: key_values(&args.labels)?,
            annotations: key_values(&args.annotations)?,
            expose: args.expose.clone(),
            user: args.user.clone(),
            writable_prefix: args.writable_prefix,
            files: args.add.clone(),
            chown: args.chown,
            ..ImageSettings::default()
        },
        virtual_packages: key_values(&args.virtual_packages)?,
        sbom: !args.no_sbom,
        allow_unhashed_pypi: args.allow_unhashed_pypi,
        pypi_index_url: args.pypi_index_url.clone(),
        pypi_extra_index_url: args.pypi_extra_index_url.clone(),
        find_links: args.find_links.clone(),
        lock_output: args.lock_output.clone(),
        sbom_dir: args.sbom_dir.clone(),
        cache_dir: args.registry.cache_dir.clone(),
        base_creds: args.registry.base_creds.clone(),
        creds: args.registry.creds.clone(),
        insecure: tls.insecure,
        cert_dir: tls.cert_dir.clone(),
        timeout: tls.timeout.map(|d| d.as_secs_f64()),
        low_speed_time: tls.low_speed_time.map(|d| d.as_secs_f64()),
        low_speed_limit: tls.low_speed_limit,
        source_date_epoch: None,
        cache_from: args.cache_from.clone(),
        cache_to: args.cache_to.clone(),
        verify_cache: args.verify_cache,
    })
}

/// Builds the image the arguments describe (one per platform) and writes every output.
pub(crate) async fn build(args: BuildArgs, cancel: Cancel, progress: Arc<Progress>) -> Result<()> {
    let env = Env::from_process();
    let (builder, job) = request(&args)?.resolve(&env)?;
    let reporter: Arc<dyn Reporter> = progress.clone();
    let ctx = Context::new()
        .with_cancel(cancel.clone())
        .with_reporter(reporter)
        .with_env(env);
    if args.dry_run {
        let plans = tokio::select! {
            plans = builder.plan(&ctx, &job) => plans?,
            () = cancel.cancelled() => anyhow::bail!("interrupted"),
        };
        return print_plans(&plans, args.json);
    }
    let outcome = tokio::select! {
        outcome = builder.run(&ctx, &job) => outcome?,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    };
    let platforms: Vec<String> = outcome.built.iter().map(|(p, _)| p.to_string()).collect();
    for written in &outcome.written {
        report(&progress, written, &platforms, !args.json)?;
    }
    if let Some(dir) = &job.sbom_dir {
        progress.note(&format!("wrote the SBOMs to {}", dir.display()));
    }
    if let Some(lock) = &job.lock_output {
        progress.note(&format!("wrote the lockfile {}", lock.display()));
    }
    if args.json {
        let sources: Vec<&[crate::builder::LayerFrom]> = outcome
            .built
            .iter()
            .map(|(_, b)| b.layer_sources())
            .collect();
        let result = super::result::build(
            &outcome.written,
            &platforms,
            &sources,
            job.lock_output.as_deref(),
            job.sbom_dir.as_deref(),
            progress.seconds(),
        );
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}

/// Says what went to an output, and prints what CI pins (unless `--json` prints it all):
/// `REF@DIGEST` for a push (the manifest's or index's digest), else the image ID (or the
/// index's digest).
fn report(
    progress: &Progress,
    written: &transport::Written,
    platforms: &[String],
    print_id: bool,
) -> Result<()> {
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
            progress.note(&format!(
                "pushed {output}: {what}; {} in {}",
                push_summary(stats),
                progress.elapsed()
            ));
            if print_id {
                outln!("{pushed}")?;
            }
        }
        _ => {
            progress.note(&format!("wrote {output}: {what} in {}", progress.elapsed()));
            if let Some(id) = written.id().filter(|_| print_id) {
                outln!("{id}")?;
            }
        }
    }
    if !written.referrers.is_empty() {
        progress.note(&format!(
            "attached {} SBOMs to {output} as referrers",
            written.referrers.len()
        ));
    }
    Ok(())
}

/// `N layers, SIZE COMPRESSION, image ID DIGEST`.
fn summary(written: &transport::WrittenImage) -> String {
    format!(
        "{} layers, {}, image ID {}",
        written.layers.len(),
        crate::cli::progress::layers_size(&written.layers),
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
fn print_plans(plans: &[crate::builder::DryRun], json: bool) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(plans)?)?;
        return Ok(());
    }
    for plan in plans {
        outln!(
            "{}: {} package layers ({:?}, budget {}) on {} base layers, plus the environment files",
            plan.platform,
            plan.plan.groups.len(),
            plan.plan.strategy,
            plan.budget,
            plan.base_layers
        )?;
        for (i, group) in plan.plan.groups.iter().enumerate() {
            let from = match plan.layers.as_ref().and_then(|l| l.get(i)).map(|l| &l.from) {
                Some(crate::builder::LayerFrom::Remote { cache }) => format!("  (in {cache})"),
                Some(crate::builder::LayerFrom::Cache) => "  (cached)".into(),
                Some(_) => "  (to build)".into(),
                None => String::new(),
            };
            outln!(
                "  layer {:>3}  {:>10}  {}{from}",
                i + 1,
                crate::cli::progress::human_bytes(group.bytes),
                group.packages.join(" ")
            )?;
        }
        let bytes: u64 = plan.downloads.iter().filter_map(|d| d.size).sum();
        outln!(
            "  to download: {} packages, {}",
            plan.downloads.len(),
            crate::cli::progress::human_bytes(bytes)
        )?;
        for d in &plan.downloads {
            outln!("    {} {}", d.package, d.url)?;
        }
        if !plan.pypi.is_empty() {
            let missing = plan.pypi.iter().filter(|w| !w.cached).count();
            outln!("  PyPI wheels: {} ({missing} to download)", plan.pypi.len())?;
            for w in &plan.pypi {
                let cached = if w.cached { " (cached)" } else { "" };
                outln!(
                    "    {}=={} {}{cached}",
                    w.pin.name,
                    w.pin.version,
                    w.pin.url
                )?;
            }
        }
    }
    Ok(())
}
