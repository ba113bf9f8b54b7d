//! The `conda-docker` command line (feature `cli`, on by default): the arguments (`args`, clap),
//! one plain function per command (`commands`, each parsing nothing and printing what the
//! library returns) and the terminal progress display (`progress`, the library's
//! [`crate::reporter::Reporter`] drawn with indicatif). The binary and the Python package's
//! `conda-docker` both call [`run`], so there is one program.

mod args;
mod commands;
mod help;
mod output;
mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs the command line with `argv` (the program name first, as `std::env::args_os` gives
/// it); returns the exit status: 0, 1 for an error, 2 for a usage error, 128 + N when stopped
/// by signal N.
pub fn run<I, T>(argv: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::Parser;
    match args::Cli::try_parse_from(argv) {
        Ok(cli) => commands::run(cli),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        }
    }
}

/// [`run`]'s status as a number, for callers that pass it on (the Python package).
pub fn run_status<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let code = run(argv);
    (0..=255u8)
        .find(|&n| ExitCode::from(n) == code)
        .map_or(1, i32::from)
}
