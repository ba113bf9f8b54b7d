//! `conda-docker login` and `logout`: check credentials against a registry and store them as
//! Docker does; remove them again.

use crate::transport;
use crate::transport::registry::{Credential, auth};
use anyhow::{Context, Result};

use crate::cli::output::errln;

/// Checks the credentials and stores them where `docker login` would.
pub(crate) async fn login(args: crate::cli::args::LoginArgs) -> Result<()> {
    let (password, from) = match (args.password, args.password_stdin) {
        (Some(p), _) => (p, "--password"),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            (
                line.trim_end_matches(['\n', '\r']).to_string(),
                "--password-stdin",
            )
        }
        (None, false) => anyhow::bail!("give the password with --password-stdin (or --password)"),
    };
    let registry = registry_host(&args.registry);
    let credential = Credential::Basic {
        username: args.username.clone(),
        password: password.clone(),
    };
    let options = args
        .tls
        .options(Some(credential), &crate::env::Env::from_process());
    let client = transport::registry::Client::new(&registry, &options)?;
    client
        .check_login()
        .await
        .map_err(|e| name_the_source(e, &args.username, from))?;
    let stored = auth::store(&registry, &args.username, &password, &options.auth)?;
    errln!(
        "Login Succeeded (credentials stored in {})",
        stored.display()
    );
    Ok(())
}

/// Removes the login `login` stored for the registry, as `docker logout` does.
pub(crate) fn logout(args: crate::cli::args::LogoutArgs) -> Result<()> {
    let registry = registry_host(&args.registry);
    let sources = auth::AuthSources::from_env(&crate::env::Env::from_process());
    let removed = auth::remove(&registry, &sources)
        .with_context(|| format!("removing the login for `{registry}`"))?;
    if removed.is_empty() {
        errln!("Not logged in to {registry}");
    } else {
        let places: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        errln!(
            "Removed the login for {registry} from {}",
            places.join(" and ")
        );
    }
    Ok(())
}

/// The registry host `login` and `logout` take: Docker Hub's spellings are `docker.io`, and a
/// scheme or trailing slash is dropped.
fn registry_host(arg: &str) -> String {
    match arg {
        "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1/" => {
            "docker.io".to_string()
        }
        other => other
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// A refusal that says which credentials were refused: the user name and where the password
/// came from, as given to `login` (not `--creds`, which `login` does not take).
fn name_the_source(error: transport::Error, username: &str, from: &str) -> transport::Error {
    match error {
        transport::Error::Unauthorized {
            registry,
            request,
            status,
            token,
            ..
        } => transport::Error::Unauthorized {
            hint: format!(
                "the user name `{username}` (-u) with the password from {from} was refused"
            ),
            registry,
            request,
            status,
            token,
        },
        other => other,
    }
}
