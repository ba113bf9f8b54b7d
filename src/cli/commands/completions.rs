//! `conda-docker completions SHELL` and `conda-docker man`: what clap knows of the command line,
//! as a shell completion script (clap_complete) and as manual pages (clap_mangen).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::args::{Cli, CompletionsArgs, ManArgs};
use crate::cli::output::{self, errln};

/// Prints the completion script for the shell.
pub(crate) fn completions(args: CompletionsArgs) -> Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "conda-docker", &mut script);
    output::bytes(&script)?;
    Ok(())
}

/// Prints the page of conda-docker or of one command, or writes every page to `--dir`.
pub(crate) fn man(args: ManArgs) -> Result<()> {
    let pages = pages();
    if let Some(dir) = &args.dir {
        return write_pages(&pages, dir);
    }
    let wanted = match &args.command {
        None => "conda-docker".to_string(),
        Some(name) => format!("conda-docker-{}", name.replace(' ', "-")),
    };
    let Some(page) = pages.iter().find(|p| page_name(p) == wanted) else {
        let names: Vec<&str> = pages
            .iter()
            .filter_map(|p| page_name(p).strip_prefix("conda-docker-"))
            .collect();
        let asked = args.command.as_deref().unwrap_or_default();
        anyhow::bail!("no command `{asked}`; there are: {}", names.join(", "));
    };
    output::bytes(&render(page)?)?;
    Ok(())
}

/// conda-docker and every command under it (`help` left out), named as `man` finds them:
/// `conda-docker-build`, run as `conda-docker build`.
fn pages() -> Vec<clap::Command> {
    let mut top = Cli::command();
    top.build();
    let mut pages = Vec::new();
    let mut todo = vec![top];
    while let Some(command) = todo.pop() {
        let subs = command
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .map(|c| c.clone().version(env!("CARGO_PKG_VERSION")));
        todo.extend(subs.collect::<Vec<_>>().into_iter().rev());
        pages.push(command);
    }
    pages
}

/// The page's file name without `.1`.
fn page_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

/// The roff page of `command`.
fn render(command: &clap::Command) -> Result<Vec<u8>> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut roff)
        .with_context(|| format!("rendering the manual page of `{}`", page_name(command)))?;
    Ok(roff)
}

/// Writes `NAME.1` for every page into `dir`.
fn write_pages(pages: &[clap::Command], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    for page in pages {
        let path = dir.join(format!("{}.1", page_name(page)));
        std::fs::write(&path, render(page)?)
            .with_context(|| format!("writing `{}`", path.display()))?;
    }
    errln!("wrote {} manual pages to {}", pages.len(), dir.display());
    Ok(())
}
