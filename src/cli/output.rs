//! Stdout, for every command: the one place that writes it. A reader that went away (`| head`)
//! ends the command quietly with status 141, as a shell reports a program killed by SIGPIPE
//! (docker, jq); any other write error is an error like the others, never a panic.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Why stdout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StdoutError {
    /// The reading end of the pipe was closed: the reader wants no more.
    #[error("stdout was closed")]
    Closed,
    /// Any other failure (a full disk behind `> file`).
    #[error("cannot write to stdout")]
    Write(#[source] io::Error),
}

impl From<io::Error> for StdoutError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Self::Closed
        } else {
            Self::Write(e)
        }
    }
}

/// The status of a command whose stdout was closed: 128 + SIGPIPE.
pub const CLOSED_STATUS: u8 = 141;

/// Writes `args` to stdout (used through [`outln!`]).
pub fn print(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    Ok(())
}

/// Writes `bytes` to stdout as they are, and flushes.
pub fn bytes(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Flushes what is buffered.
pub fn flush() -> Result<(), StdoutError> {
    io::stdout().lock().flush()?;
    Ok(())
}

/// [`CLOSED_STATUS`] when `error` is (or was caused by) a closed stdout.
pub fn closed_status(error: &anyhow::Error) -> Option<ExitCode> {
    error
        .chain()
        .any(|c| matches!(c.downcast_ref::<StdoutError>(), Some(StdoutError::Closed)))
        .then(|| ExitCode::from(CLOSED_STATUS))
}

/// `println!` for stdout through [`print`]: evaluates to `Result<(), StdoutError>`.
macro_rules! outln {
    () => {
        $crate::cli::output::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes `line` and a newline to stderr; a closed or full stderr is ignored (what matters
/// goes to stdout, and a message about a failed message helps nobody).
pub fn note(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// `eprintln!` through [`note`], never panicking.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::note(&format!($($arg)*))
    };
}
pub(crate) use errln;
