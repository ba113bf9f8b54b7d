//! Each command as a plain function returning an exit status.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use conda_docker::build::{Builder, Packages};
use conda_docker::conda::plan::LayeringStrategy;
use conda_docker::image::{Cancel, Reference};
use conda_docker::reporter::Reporter;
use conda_docker::settings::{self, ImageSettings};
use conda_docker::transport::registry::{Credential, RegistryOptions, auth};
use conda_docker::transport::{self, Location, Remote};

use crate::cli::{BuildArgs, Cli, Command, Layering};
use crate::progress::Progress;

/// Runs the parsed command line; errors are printed with their causes.
pub fn run(cli: Cli) -> ExitCode {
    init_tracing(cli.verbose, cli.quiet);
    // A `*-no-provider` TLS feature needs the provider installed before any client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cancel = Cancel::new();
    let progress = Arc::new(Progress::new(cli.quiet));
    let result = runtime.block_on(async {
        let watcher = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            })
        };
        let r = match cli.command {
            Command::Build(args) => build(*args, cancel.clone(), progress.clone()).await,
            Command::Login(args) => login(args).await,
            Command::Inspect(args) => inspect(args, cancel.clone()).await,
            Command::Copy(args) => copy(args, cancel.clone(), progress.clone()).await,
        };
        watcher.abort();
        r
    });
    progress.clear();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if cancel.is_cancelled() => {
            eprintln!("error: cancelled ({e}); nothing was written");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info,conda_docker=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONDA_DOCKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Resolves when `cancel` is set.
async fn cancelled(cancel: Cancel) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The packages, channels, name, variables and settings an invocation asks for.
struct BuildInput {
    packages: Packages,
    channels: Vec<String>,
    name: Option<String>,
    variables: std::collections::BTreeMap<String, String>,
    settings: ImageSettings,
}

fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))
}

/// Reads `-f`, `-p` or `-n` (or plain specs) into what to build.
fn build_input(args: &BuildArgs, subdir: conda_docker::conda::Subdir) -> Result<BuildInput> {
    use conda_docker::conda::{env_file, lock};
    let mut input = BuildInput {
        packages: Packages::Specs(args.specs.clone()),
        channels: args.channels.clone(),
        name: None,
        variables: Default::default(),
        settings: ImageSettings::default(),
    };
    if let Some(path) = &args.file {
        let text = read_text(path)?;
        match lock::detect(&text) {
            Some(format) => {
                if !args.specs.is_empty() {
                    anyhow::bail!(
                        "`{}` is a lockfile: it pins every package, so give no specs with it",
                        path.display()
                    );
                }
                input.packages =
                    Packages::Locked(lock::read(path, &text, format, subdir, &args.environment)?);
            }
            None => {
                let env = env_file::parse(path, &text)?;
                let mut specs = env.dependencies;
                specs.extend(args.specs.iter().cloned());
                input.packages = Packages::Specs(specs);
                if !env.channels.is_empty() && !args.channels_given {
                    input.channels = env.channels;
                }
                input.name = env.name;
                input.variables = env.variables;
                if let Some(section) = env.image {
                    input.settings = serde_yaml::from_value(section).map_err(|e| {
                        anyhow::anyhow!("`{}`: the `conda-docker:` section: {e}", path.display())
                    })?;
                }
            }
        }
    }
    let prefix = match (&args.prefix, &args.name) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(n)) => Some(conda_docker::conda::prefix::find_named(n)?),
        (None, None) => None,
    };
    if let Some(prefix) = prefix {
        if !args.specs.is_empty() {
            anyhow::bail!(
                "--prefix/--name builds an existing environment's packages: give no specs with it"
            );
        }
        input.packages = Packages::Records(conda_docker::conda::prefix::read_records(&prefix)?);
        input.name = args
            .name
            .clone()
            .or_else(|| prefix.file_name().map(|n| n.to_string_lossy().into_owned()));
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

async fn build(mut args: BuildArgs, cancel: Cancel, progress: Arc<Progress>) -> Result<()> {
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
    let mut builder = Builder::from_packages(input.packages)
        .with_channels(input.channels.clone())
        .with_platform(args.platform.clone())
        .with_base(args.base.clone())
        .with_target_prefix(args.target_prefix.clone())
        .with_layering(match args.layering_strategy {
            Layering::Layered => LayeringStrategy::Layered,
            Layering::Single => LayeringStrategy::Single,
        })
        .with_env_name(input.name.clone())
        .with_variables(input.variables)
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
    .with_base_registry(RegistryOptions {
        insecure: args.registry.insecure,
        credential: parse_creds(args.registry.base_creds.as_deref(), "--base-creds")?,
    });
    let blob_cache = builder.blob_cache();
    let built = tokio::select! {
        built = builder.build() => built?,
        () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
    };
    let remote = Remote {
        options: RegistryOptions {
            insecure: args.registry.insecure,
            credential: parse_creds(args.registry.creds.as_deref(), "--creds")?,
        },
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
        conda_docker::conda::lock::write(lock, built.records(), subdir, &input.channels)?;
        progress.note(&format!("wrote the lockfile {}", lock.display()));
    }
    Ok(())
}

fn parse_creds(value: Option<&str>, flag: &str) -> Result<Option<Credential>> {
    value
        .map(|v| Credential::from_user_pass(v).with_context(|| format!("{flag} takes USER:PASS")))
        .transpose()
}

async fn login(args: crate::cli::LoginArgs) -> Result<()> {
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin (or --password)"),
    };
    let registry = match args.registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1/" => {
            "docker.io".to_string()
        }
        other => other
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    };
    let credential = Credential::Basic {
        username: args.username.clone(),
        password: password.clone(),
    };
    let client = transport::registry::Client::new(
        &registry,
        &RegistryOptions {
            insecure: args.insecure,
            credential: Some(credential),
        },
    )?;
    client.check_login().await?;
    let stored = auth::store(&registry, &args.username, &password).map_err(anyhow::Error::msg)?;
    eprintln!(
        "Login Succeeded (credentials stored in {})",
        stored.display()
    );
    Ok(())
}

/// The registry settings and blob cache for `inspect` and `copy`: (source, destination).
fn remotes(args: &crate::cli::RegistryArgs) -> Result<(Remote, Remote)> {
    let cache = transport::registry::BlobCache::for_cache_dir(args.cache_dir.as_deref());
    let remote = |creds: Option<&str>, flag: &str| -> Result<Remote> {
        Ok(Remote {
            options: RegistryOptions {
                insecure: args.insecure,
                credential: parse_creds(creds, flag)?,
            },
            cache: cache.clone(),
        })
    };
    Ok((
        remote(args.base_creds.as_deref(), "--base-creds")?,
        remote(args.creds.as_deref(), "--creds")?,
    ))
}

async fn read_image(
    source: &str,
    args: &crate::cli::RemoteArgs,
    remote: &Remote,
    cancel: &Cancel,
) -> Result<conda_docker::image::Image> {
    let location = Location::parse_source(source)?;
    let subdir = conda_docker::conda::channel::parse_subdir(&args.platform)?;
    let platform = conda_docker::build::oci_platform(subdir);
    let image = tokio::select! {
        i = transport::read(&location, &platform, remote, cancel) => i,
        () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
    };
    image.with_context(|| format!("reading `{source}`"))
}

async fn inspect(args: crate::cli::InspectArgs, cancel: Cancel) -> Result<()> {
    let (remote, _) = remotes(&args.remote.registry)?;
    let image = read_image(&args.image, &args.remote, &remote, &cancel).await?;
    let report = tokio::task::block_in_place(|| conda_docker::inspect::inspect(&image, &cancel))
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
        crate::progress::human_bytes(report.total_size),
        crate::progress::human_bytes(report.total_uncompressed_size),
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
        let what = if l.packages.is_empty() {
            l.created_by
                .clone()
                .unwrap_or_else(|| format!("{} entries", l.entries))
        } else {
            l.packages.join(" ")
        };
        println!(
            "{:>3}  {:<19}  {:>9}  {:>9}  {what}",
            i + 1,
            &l.diff_id.to_string()[..19],
            l.size
                .map(crate::progress::human_bytes)
                .unwrap_or_else(|| "-".into()),
            crate::progress::human_bytes(l.uncompressed_size),
        );
    }
    Ok(())
}

async fn copy(args: crate::cli::CopyArgs, cancel: Cancel, progress: Arc<Progress>) -> Result<()> {
    let (src_remote, dst_remote) = remotes(&args.remote.registry)?;
    let destination = Location::parse_destination(&args.destination)?;
    destination.check_writable()?;
    let tags = args
        .images
        .iter()
        .map(|i| i.parse::<Reference>())
        .collect::<Result<Vec<_>, _>>()?;
    let image = read_image(&args.source, &args.remote, &src_remote, &cancel).await?;
    let reporter: Arc<dyn Reporter> = progress.clone();
    let written = tokio::select! {
        w = transport::write(&image, &destination, &tags, &dst_remote, &cancel, reporter.as_ref()) => w,
        () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
    }
    .with_context(|| format!("writing {destination}"))?;
    progress.note(&format!(
        "copied {} to {destination}: {} layers",
        args.source,
        written.layers.len()
    ));
    match (&destination, &written.manifest_digest) {
        (Location::Registry(r), Some(d)) => println!("{}@{d}", r.familiar_tagged()),
        _ => println!("{}", written.config_digest),
    }
    Ok(())
}
