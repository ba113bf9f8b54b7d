//! Each command as a plain function returning a result (or, for `diff`, an exit status); [`run`]
//! prints errors with their causes.

mod build;
mod cache;
mod completions;
mod copy;
mod diff;
mod inspect;
mod lock;
mod login;
mod provenance;
mod result;
mod sbom;

use std::process::ExitCode;
use std::sync::Arc;

use crate::image::Cancel;
use crate::transport::registry::Credential;
use crate::transport::{self, Location, Remote, Session};
use anyhow::{Context, Result};

use crate::cli::args::{Cli, Command};
use crate::cli::output::errln;
use crate::cli::progress::{Level, Progress};

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
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `diff --exit-code` says "different" with 1, so its errors are 2, as diff(1)'s.
    let error_code = match &cli.command {
        Command::Diff(args) if args.exit_code => 2,
        _ => 1,
    };
    let cancel = Cancel::new();
    // The signal that stopped the command, for the shell's 128 + N exit status.
    let signal = Arc::new(std::sync::atomic::AtomicU8::new(2));
    let progress = Arc::new(Progress::new(Level::new(cli.quiet, cli.verbose)));
    let result = runtime.block_on(async {
        let watcher = {
            let cancel = cancel.clone();
            let signal = signal.clone();
            tokio::spawn(async move {
                if let Some(number) = stop_signal().await {
                    signal.store(number, std::sync::atomic::Ordering::SeqCst);
                    cancel.cancel();
                }
            })
        };
        let r = dispatch(cli.command, &cancel, &progress).await;
        watcher.abort();
        r
    });
    progress.clear();
    let result = result.and_then(|code| {
        crate::cli::output::flush()
            .map(|()| code)
            .map_err(Into::into)
    });
    match result {
        Ok(code) => code,
        Err(e) if let Some(code) = crate::cli::output::closed_status(&e) => code,
        Err(_) if cancel.is_cancelled() => {
            let number = signal.load(std::sync::atomic::Ordering::SeqCst);
            errln!(
                "cancelled by {}; {}",
                signal_name(number),
                progress.written()
            );
            ExitCode::from(128 + number)
        }
        Err(e) => {
            errln!("error: {e}");
            for cause in e.chain().skip(1) {
                errln!("  caused by: {cause}");
            }
            ExitCode::from(error_code)
        }
    }
}

/// Runs `command`: its exit status, or its error.
async fn dispatch(command: Command, cancel: &Cancel, progress: &Arc<Progress>) -> Result<ExitCode> {
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Build(args) => done(build::build(*args, cancel.clone(), progress.clone()).await),
        Command::Login(args) => done(login::login(args).await),
        Command::Inspect(args) => done(inspect::inspect(args, cancel.clone(), progress).await),
        Command::Diff(args) => diff::diff(args, cancel.clone(), progress).await,
        Command::Lock(args) => done(lock::lock(args, cancel.clone(), progress.clone()).await),
        Command::Copy(args) => done(copy::copy(args, cancel.clone(), progress.clone()).await),
        Command::Cache(args) => done(cache::cache(args, cancel.clone()).await),
        Command::Sbom(args) => done(sbom::sbom(args, cancel.clone(), progress).await),
        Command::Provenance(args) => {
            done(provenance::provenance(args, cancel.clone(), progress).await)
        }
        Command::Logout(args) => done(login::logout(args)),
        Command::Completions(args) => done(completions::completions(args)),
        Command::Man(args) => done(completions::man(args)),
    }
}

/// How people name the signal `number` that stopped a command.
fn signal_name(number: u8) -> &'static str {
    match number {
        1 => "SIGHUP",
        15 => "SIGTERM",
        _ => "Ctrl-C",
    }
}

/// Resolves with the signal's number on Ctrl-C (SIGINT, 2), SIGTERM (15: `timeout`, `docker
/// stop`, CI cancellation) or SIGHUP (1: a closed terminal): each stops a command the same way.
/// `None` if no handler could be set.
async fn stop_signal() -> Option<u8> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok()?;
    let mut hangup = signal(SignalKind::hangup()).ok()?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.ok().map(|()| 2),
        _ = term.recv() => Some(15),
        _ = hangup.recv() => Some(1),
    }
}

/// Logs to stderr at the level `-v`/`-q` choose, or as `CONDA_DOCKER_LOG` says.
fn init_tracing(verbose: u8, quiet: bool) {
    // The TLS verifier logs a failed verification itself; our error says it, with the way out.
    // Other crates' messages (rattler's, resolvo's) only from -v on, their debug at -vvv.
    let level = match (quiet, verbose) {
        (true, _) => "off,conda_docker=error",
        (_, 0) => "error,conda_docker=warn,rustls_platform_verifier=off",
        (_, 1) => "warn,conda_docker=info,rustls_platform_verifier=off",
        (_, 2) => "warn,conda_docker=debug,rustls_platform_verifier=off",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONDA_DOCKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Parses `USER:PASS` given to `flag`.
pub(crate) fn parse_creds(value: Option<&str>, flag: &str) -> Result<Option<Credential>> {
    value
        .map(|v| Credential::from_user_pass(v).with_context(|| format!("{flag} takes USER:PASS")))
        .transpose()
}

/// The registry settings and blob cache for `inspect` and `copy`: (source, destination).
pub(crate) fn remotes(args: &crate::cli::args::RegistryArgs) -> Result<(Remote, Remote)> {
    let env = crate::env::Env::from_process();
    let cache = crate::store::Store::at(args.cache_dir.as_deref(), &env).blobs();
    let remote = |creds: Option<&str>, flag: &str| -> Result<Remote> {
        Ok(Remote {
            options: args.tls.options(parse_creds(creds, flag)?, &env),
            cache: cache.clone(),
        })
    };
    Ok((
        remote(args.base_creds.as_deref(), "--base-creds")?,
        remote(args.creds.as_deref(), "--creds")?,
    ))
}

/// Reads the image at `source` (as `-b` takes it) for `--platform`.
pub(crate) async fn read_image(
    source: &str,
    args: &crate::cli::args::RemoteArgs,
    remote: &Remote,
    cancel: &Cancel,
    reporter: &dyn crate::reporter::Reporter,
) -> Result<crate::image::Image> {
    let location = Location::parse_source(source)?;
    let subdir = crate::platform::parse_subdir(&args.platform)?;
    let platform = crate::platform::oci_platform(subdir);
    let ctx = Session::new(cancel)
        .with_remote(remote)
        .with_reporter(reporter)
        .read(&platform);
    let image = tokio::select! {
        i = transport::read(&location, &ctx) => i,
        () = cancel.cancelled() => anyhow::bail!("interrupted"),
    };
    image.with_context(|| format!("reading `{source}`"))
}
