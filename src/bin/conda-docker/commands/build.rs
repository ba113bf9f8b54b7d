//! `conda-docker build`: packages and a base image in, images and a lockfile out.

use std::sync::Arc;

use anyhow::{Context, Result};
use conda_docker::build::Builder;
use conda_docker::conda::channel::Sources;
use conda_docker::conda::place::Trim;
use conda_docker::conda::plan::LayeringStrategy;
use conda_docker::image::{Cancel, Image, Reference};
use conda_docker::input::Input;
use conda_docker::reporter::Reporter;
use conda_docker::settings::{self, ImageSettings};
use conda_docker::transport::{self, Location, Remote};

use super::parse_creds;
use crate::cli::{BuildArgs, Layering};
use crate::progress::Progress;

/// Reads `-f`, `-p` or `-n` (or plain specs) into what to build, with the channels `-c` gives
/// winning over the file's.
fn build_input(args: &BuildArgs, subdir: conda_docker::conda::Subdir) -> Result<Input> {
    let prefix = match (&args.prefix, &args.name) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(n)) => Some(conda_docker::conda::prefix::find_named(n)?),
        (None, None) => None,
    };
    let mut input = match (&args.file, prefix) {
        (_, Some(prefix)) => {
            if !args.specs.is_empty() {
                anyhow::bail!(
                    "--prefix/--name builds an existing environment's packages: give no specs with it"
                );
            }
            let mut input = Input::from_prefix(&prefix)?;
            input.name = args.name.clone().or(input.name);
            input
        }
        (Some(file), None) => Input::read_file(file, subdir, &args.environment, &args.specs)?,
        (None, None) => Input::specs(args.specs.clone()),
    };
    if args.channels_given || input.channels.is_empty() {
        input.channels = args.channels.clone();
    }
    Ok(input)
}

/// Where channels are fetched from: `--mirror` and `--channel-name`, then the config file's
/// `[mirrors]` (the first mirror named for a channel wins).
fn sources(args: &BuildArgs) -> Result<Sources> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut sources = Sources::new();
    for m in &args.mirrors {
        sources = sources.parse_mirror(m, &cwd)?;
    }
    for n in &args.channel_names {
        sources = sources.parse_channel_name(n, &cwd)?;
    }
    if let Some(path) = super::config_file()? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the config file `{}`", path.display()))?;
        sources = sources.read_config(&path, &text)?;
    }
    Ok(sources)
}

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
pub(crate) async fn build(
    mut args: BuildArgs,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<()> {
    args.channels_given = !args.channels.is_empty();
    if args.channels.is_empty() {
        args.channels = vec!["conda-forge".into()];
    }
    let mut platforms: Vec<String> = Vec::new();
    for p in &args.platforms {
        if !platforms.contains(p) {
            platforms.push(p.clone());
        }
    }
    let subdirs = platforms
        .iter()
        .map(|p| conda_docker::conda::channel::parse_subdir(p))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = subdirs
        .iter()
        .map(|subdir| build_input(&args, *subdir))
        .collect::<Result<Vec<_>>>()?;
    let first = &inputs[0];
    let settings = first.settings.clone().merged_with(cli_settings(&args)?);
    settings.validate()?;
    let image_names = if args.images.is_empty() {
        vec![first.image_name()]
    } else {
        args.images.clone()
    };
    let tags = image_names
        .iter()
        .map(|i| i.parse::<Reference>())
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = args
        .outputs
        .iter()
        .map(|o| Location::parse_destination(o))
        .collect::<Result<Vec<_>, _>>()?;
    for output in &outputs {
        output.check_writable()?;
        if platforms.len() > 1
            && matches!(
                output,
                Location::DockerArchive { .. } | Location::OciArchive { .. }
            )
        {
            anyhow::bail!(
                "{output}: an archive holds one platform; write the {} platforms to `oci:DIR` or \
                 push them to a registry",
                platforms.len()
            );
        }
    }
    if let Some(lock) = &args.lock_output {
        if platforms.len() > 1 && !conda_docker::conda::lock::writes_conda_lock(lock) {
            anyhow::bail!(
                "--lock-output {}: conda's explicit format holds one platform; name a conda-lock \
                 file (`.yml`) for several",
                lock.display()
            );
        }
        Location::DockerArchive {
            path: lock.clone(),
            reference: None,
        }
        .check_writable()?;
        conda_docker::conda::lock::check_destination(lock)?;
    }
    if let Some(dir) = &args.sbom_dir
        && dir.exists()
        && !dir.is_dir()
    {
        anyhow::bail!(
            "--sbom-dir {}: exists and is not a directory",
            dir.display()
        );
    }
    if args.max_layers < 2 {
        anyhow::bail!(
            "--max-layers {}: an image needs at least 2 layers (the packages and the environment files)",
            args.max_layers
        );
    }
    let trim =
        Trim::from_groups(&args.trim, args.no_trim).map_err(|e| anyhow::anyhow!("--trim: {e}"))?;
    let sources = sources(&args)?;
    let reporter: Arc<dyn Reporter> = progress.clone();
    let mut built = Vec::new();
    let mut plans = Vec::new();
    let mut blob_cache = None;
    for (platform, input) in platforms.iter().zip(inputs) {
        let mut builder = Builder::from_input(input)
            .from_env()?
            .with_platform(platform.clone())
            .with_base(args.base.clone())
            .with_target_prefix(args.target_prefix.clone())
            .with_layering(match args.layering_strategy {
                Layering::Auto => LayeringStrategy::Auto,
                Layering::Layered => LayeringStrategy::Layered,
                Layering::Single => LayeringStrategy::Single,
            })
            .with_max_layers(args.max_layers)
            .with_trim(trim)
            .with_sources(sources.clone())
            .with_sbom(!args.no_sbom)
            .with_settings(settings.clone())
            .with_cancel(cancel.clone())
            .with_reporter(reporter.clone());
        for vp in &args.virtual_packages {
            let (name, version) = settings::parse_key_value(vp).map_err(anyhow::Error::msg)?;
            builder = builder.with_virtual_package(name, version);
        }
        let builder = match args.registry.cache_dir.clone() {
            Some(dir) => builder.with_cache_dir(dir),
            None => builder,
        }
        .with_base_registry(args.registry.tls.options(parse_creds(
            args.registry.base_creds.as_deref(),
            "--base-creds",
        )?));
        blob_cache = Some(builder.blob_cache());
        if args.dry_run {
            plans.push(tokio::select! {
                plan = builder.dry_run() => plan?,
                () = cancel.cancelled() => anyhow::bail!("interrupted"),
            });
            continue;
        }
        built.push(tokio::select! {
            built = builder.build() => built?,
            () = cancel.cancelled() => anyhow::bail!("interrupted"),
        });
    }
    if args.dry_run {
        print_plans(&plans, args.json)?;
        return Ok(());
    }
    let remote = Remote {
        options: args
            .registry
            .tls
            .options(parse_creds(args.registry.creds.as_deref(), "--creds")?),
        cache: blob_cache.context("no platform to build")?,
    };
    let images: Vec<_> = built.iter().map(|b| b.image()).collect();
    let options = transport::WriteOptions {
        compression: args.compression.compression,
    };
    for output in outputs {
        let target = Target {
            output: &output,
            tags: &tags,
            remote: &remote,
            options: &options,
        };
        let written = if let [image] = images.as_slice() {
            vec![write_one(image, &target, &cancel, &progress).await?]
        } else {
            write_many(&images, &target, &cancel, &progress)
                .await?
                .images
        };
        // The SBOMs beside each image, as OCI referrers (registries and OCI layouts).
        for (b, w) in built.iter().zip(&written) {
            let artifacts = b.referrers();
            let Some(subject) = w.manifest_descriptor() else {
                continue;
            };
            if artifacts.is_empty() {
                continue;
            }
            let attached =
                transport::attach(&output, &subject, &artifacts, &remote, progress.as_ref())
                    .await
                    .with_context(|| format!("attaching the SBOMs to {output}"))?;
            if !attached.is_empty() {
                progress.note(&format!(
                    "attached {} SBOMs to {} as referrers",
                    attached.len(),
                    subject.digest
                ));
            }
        }
    }
    if let Some(dir) = &args.sbom_dir {
        write_sboms(dir, &subdirs, &built)?;
        progress.note(&format!("wrote the SBOMs to {}", dir.display()));
    }
    if let Some(lock) = &args.lock_output {
        let locked: Vec<_> = subdirs
            .iter()
            .zip(&built)
            .map(|(subdir, b)| (*subdir, b.records()))
            .collect();
        conda_docker::conda::lock::write(lock, &locked)?;
        progress.note(&format!("wrote the lockfile {}", lock.display()));
    }
    Ok(())
}

/// Writes each platform's SBOMs into `dir` (made if missing).
fn write_sboms(
    dir: &std::path::Path,
    subdirs: &[conda_docker::conda::Subdir],
    built: &[conda_docker::build::BuiltImage],
) -> Result<()> {
    use conda_docker::sbom::Format;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (subdir, b) in subdirs.iter().zip(built) {
        let Some(sbom) = b.sbom() else { continue };
        for (format, name) in [
            (Format::Spdx, "sbom.spdx.json"),
            (Format::CycloneDx, "sbom.cdx.json"),
        ] {
            let name = match subdirs {
                [_] => name.to_string(),
                _ => format!("{subdir}.{name}"),
            };
            let path = dir.join(name);
            conda_docker::atomic::write(&path, sbom.document(format))
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Where and how an output is written.
struct Target<'a> {
    output: &'a Location,
    tags: &'a [Reference],
    remote: &'a Remote,
    options: &'a transport::WriteOptions,
}

/// Writes one image to `output`; prints its image ID, or `REF@DIGEST` for a push.
async fn write_one(
    image: &Image,
    target: &Target<'_>,
    cancel: &Cancel,
    progress: &Arc<Progress>,
) -> Result<transport::WrittenImage> {
    let Target {
        output,
        tags,
        remote,
        options,
    } = *target;
    let written = tokio::select! {
        w = transport::write_with(image, output, tags, remote, options, cancel, progress.as_ref()) => w,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    }
    .with_context(|| format!("writing {output}"))?;
    report(
        progress,
        output,
        &summary(&written),
        written.push.as_ref(),
        written.manifest_digest.as_ref(),
        &written.config_digest,
    );
    Ok(written)
}

/// Writes a multi-platform image to `output`; prints the index digest, or `REF@DIGEST`.
async fn write_many(
    images: &[&Image],
    target: &Target<'_>,
    cancel: &Cancel,
    progress: &Arc<Progress>,
) -> Result<transport::WrittenIndex> {
    let Target {
        output,
        tags,
        remote,
        options,
    } = *target;
    let written = tokio::select! {
        w = transport::write_index_with(images, output, tags, remote, options, cancel, progress.as_ref()) => w,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    }
    .with_context(|| format!("writing {output}"))?;
    for (image, one) in images.iter().zip(&written.images) {
        progress.note(&format!("  {}: {}", image.platform(), summary(one)));
    }
    let what = format!("{} platforms, index {}", images.len(), written.digest);
    report(
        progress,
        output,
        &what,
        written.push.as_ref(),
        Some(&written.digest),
        &written.digest,
    );
    Ok(written)
}

/// Says what went to `output`, and prints what CI pins: `REF@DIGEST` for a push (`digest`, the
/// manifest's or index's), else `id`.
fn report(
    progress: &Progress,
    output: &Location,
    what: &str,
    push: Option<&transport::registry::PushStats>,
    digest: Option<&conda_docker::image::Digest>,
    id: &conda_docker::image::Digest,
) {
    match (output, push, digest) {
        (Location::Registry(reference), Some(stats), Some(digest)) => {
            progress.note(&format!(
                "pushed {reference}: {what}; {}",
                push_summary(stats)
            ));
            println!("{}@{digest}", reference.familiar_tagged());
        }
        _ => {
            progress.note(&format!("wrote {output}: {what}"));
            println!("{id}");
        }
    }
}

/// `N layers, SIZE, image ID DIGEST`.
fn summary(written: &transport::WrittenImage) -> String {
    let size: u64 = written.layers.iter().map(|l| l.size).sum();
    format!(
        "{} layers, {}, image ID {}",
        written.layers.len(),
        crate::progress::human_bytes(size),
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
fn print_plans(plans: &[conda_docker::build::DryRun], json: bool) -> Result<()> {
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
                crate::progress::human_bytes(group.bytes),
                group.packages.join(" ")
            );
        }
        let bytes: u64 = plan.downloads.iter().filter_map(|d| d.size).sum();
        println!(
            "  to download: {} packages, {}",
            plan.downloads.len(),
            crate::progress::human_bytes(bytes)
        );
        for d in &plan.downloads {
            println!("    {} {}", d.package, d.url);
        }
    }
    Ok(())
}
