//! `conda-docker login` and `logout`: check credentials against a registry and store them as
//! Docker does; remove them again.

use crate::transport;
use crate::transport::registry::auth;
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
    let options = args.tls.options(None, &crate::env::Env::from_process());
    let stored = transport::registry::login(&args.registry, &args.username, &password, &options)
        .await
        .map_err(|e| name_the_source(e, &args.username, from))?;
    errln!(
        "Login Succeeded (credentials stored in {})",
        stored.display()
    );
    Ok(())
}

/// Removes the login `login` stored for the registry, as `docker logout` does.
pub(crate) fn logout(args: crate::cli::args::LogoutArgs) -> Result<()> {
    let registry = transport::registry::login_host(&args.registry);
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
