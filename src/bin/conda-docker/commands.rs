//! Each command as a plain function returning an exit status.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use conda_docker::build::Builder;
use conda_docker::conda::plan::LayeringStrategy;
use conda_docker::image::{Cancel, Reference};
use conda_docker::reporter::Reporter;
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
            Command::Build(args) => build(args, cancel.clone(), progress.clone()).await,
            Command::Login(args) => login(args).await,
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

async fn build(args: BuildArgs, cancel: Cancel, progress: Arc<Progress>) -> Result<()> {
    let tags = args
        .images
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
    let reporter: Arc<dyn Reporter> = progress.clone();
    let builder = Builder::new(args.specs)
        .with_channels(args.channels)
        .with_platform(args.platform)
        .with_base(args.base)
        .with_target_prefix(args.target_prefix)
        .with_layering(match args.layering_strategy {
            Layering::Layered => LayeringStrategy::Layered,
            Layering::Single => LayeringStrategy::Single,
        })
        .with_cancel(cancel.clone())
        .with_reporter(reporter.clone());
    let builder = match args.cache_dir {
        Some(dir) => builder.with_cache_dir(dir),
        None => builder,
    }
    .with_base_registry(RegistryOptions {
        insecure: args.insecure,
        credential: parse_creds(args.base_creds.as_deref(), "--base-creds")?,
    });
    let blob_cache = builder.blob_cache();
    let built = tokio::select! {
        built = builder.build() => built?,
        () = cancelled(cancel.clone()) => anyhow::bail!("interrupted"),
    };
    let remote = Remote {
        options: RegistryOptions {
            insecure: args.insecure,
            credential: parse_creds(args.creds.as_deref(), "--creds")?,
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
                    "pushed {reference}: {summary}; {} blobs uploaded, {} already there, {} mounted",
                    stats.uploaded, stats.skipped, stats.mounted
                ));
                println!("{}@{digest}", reference.familiar_tagged());
            }
            _ => {
                progress.note(&format!("wrote {output}: {summary}"));
                println!("{}", written.config_digest);
            }
        }
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
