//! `conda-docker login`: check credentials against a registry and store them as Docker does.

use crate::transport;
use crate::transport::registry::{Credential, auth};
use anyhow::{Context, Result};

/// Checks the credentials and stores them where `docker login` would.
pub(crate) async fn login(args: crate::cli::args::LoginArgs) -> Result<()> {
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
    let options = args
        .tls
        .options(Some(credential), &crate::env::Env::from_process());
    let client = transport::registry::Client::new(&registry, &options)?;
    client.check_login().await?;
    let stored = auth::store(&registry, &args.username, &password, &options.auth)?;
    eprintln!(
        "Login Succeeded (credentials stored in {})",
        stored.display()
    );
    Ok(())
}
