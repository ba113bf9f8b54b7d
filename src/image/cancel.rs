//! Cooperative cancellation: long writes check a shared flag between entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) const CANCELLED_MESSAGE: &str = "cancelled";

/// A flag that a Ctrl-C handler sets and long-running writes poll.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of this flag to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An `Interrupted` I/O error when cancelled, for use inside write loops.
    pub fn check(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                CANCELLED_MESSAGE,
            ))
        } else {
            Ok(())
        }
    }
}
