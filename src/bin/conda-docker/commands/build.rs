//! `conda-docker build`: packages and a base image in, images and a lockfile out.

use std::sync::Arc;

use anyhow::{Context, Result};
use conda_docker::build::Builder;
use conda_docker::conda::plan::LayeringStrategy;
use conda_docker::image::{Cancel, Reference};
use conda_docker::input::Input;
use conda_docker::reporter::Reporter;
use conda_docker::settings::{self, ImageSettings};
use conda_docker::transport::{self, Location, Remote};

use super::{cancelled, parse_creds};
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

/// Builds the image the arguments describe and writes every output.
pub(crate) async fn build(
    mut args: BuildArgs,
    cancel: Cancel,
    progress: Arc<Progress>,
) -> Result<()> {
    args.channels_given = !args.channels.is_empty();
    if args.channels.is_empty() {
        args.channels = vec!["conda-forge".into()];
    }
    let subdir = conda_docker::conda::channel::parse_subdir(&args.platform)?;
    let input = build_input(&args, subdir)?;
    let settings = input.settings.clone().merged_with(cli_settings(&args)?);
    settings.user_spec().map_err(anyhow::Error::msg)?;
    let image_names = if args.images.is_empty() {
        vec![match &input.name {
            Some(n) => format!("{}:latest", n.to_lowercase()),
            None => "conda-docker:latest".to_string(),
        }]
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
    }
    if let Some(lock) = &args.lock_output {
        Location::DockerArchive {
            path: lock.clone(),
            reference: None,
        }
        .check_writable()?;
    }
    let reporter: Arc<dyn Reporter> = progress.clone();
    let channels = input.channels.clone();
    let mut builder = Builder::from_input(input)
        .with_platform(args.platform.clone())
        .with_base(args.base.clone())
        .with_target_prefix(args.target_prefix.clone())
        .with_layering(match args.layering_strategy {
            Layering::Layered => LayeringStrategy::Layered,
            Layering::Single => LayeringStrategy::Single,
        })
        .with_settings(settings)
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
    let blob_cache = builder.blob_cache();
    let built = tokio::select! {
        built = builder.build() => built?,
        () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
    };
    let remote = Remote {
        options: args
            .registry
            .tls
            .options(parse_creds(args.registry.creds.as_deref(), "--creds")?),
        cache: blob_cache,
    };
    for output in outputs {
        let written = tokio::select! {
            w = transport::write(built.image(), &output, &tags, &remote, &cancel, reporter.as_ref()) => w,
            () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
        }
        .with_context(|| format!("writing {output}"))?;
        let size: u64 = written.layers.iter().map(|l| l.size).sum();
        let summary = format!(
            "{} layers, {}, image ID {}",
            written.layers.len(),
            crate::progress::human_bytes(size),
            written.config_digest
        );
        match (&output, &written.push, &written.manifest_digest) {
            (Location::Registry(reference), Some(stats), Some(digest)) => {
                progress.note(&format!(
                    "pushed {reference}: {summary}; {} blobs uploaded, {} already there, {} mounted, \
                     {} layers not compressed again",
                    stats.uploaded, stats.skipped, stats.mounted, stats.compressed_reused
                ));
                println!("{}@{digest}", reference.familiar_tagged());
            }
            _ => {
                progress.note(&format!("wrote {output}: {summary}"));
                println!("{}", written.config_digest);
            }
        }
    }
    if let Some(lock) = &args.lock_output {
        conda_docker::conda::lock::write(lock, built.records(), subdir, &channels)?;
        progress.note(&format!("wrote the lockfile {}", lock.display()));
    }
    Ok(())
}
