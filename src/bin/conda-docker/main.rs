//! The `conda-docker` command (also `conda docker ...` through conda's plugin dispatch).

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    commands::run(args)
}
