//! One way to cancel: a token set by the front end (Ctrl-C, SIGTERM, Python's
//! `KeyboardInterrupt`) that async work awaits and blocking loops check between steps.

use tokio_util::sync::CancellationToken;

/// The error a cancelled step returns, inside an [`std::io::Error`] of kind `Interrupted` where
/// an I/O signature is needed: recognised by type, never by message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// A cancellation token shared by every part of one operation.
#[derive(Clone, Debug, Default)]
pub struct Cancel(CancellationToken);

impl Cancel {
    /// A token that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of this token to stop.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves when [`Cancel::cancel`] is called (at once if it was).
    pub async fn cancelled(&self) {
        self.0.cancelled().await;
    }

    /// An `Interrupted` I/O error carrying [`Cancelled`] when cancelled, for write loops.
    pub fn check(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                Cancelled,
            ))
        } else {
            Ok(())
        }
    }

    /// [`Cancel::check`] for inside a [`std::io::Write::write`]: of kind `Other`, since
    /// `write_all` retries an `Interrupted` write forever.
    pub fn check_in_write(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::other(Cancelled))
        } else {
            Ok(())
        }
    }
}

/// Whether `error` is a cancellation ([`Cancel::check`]'s or [`Cancel::check_in_write`]'s).
pub fn is_cancelled(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::Other
    ) && error.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}
