//! What a build runs with, apart from its settings: the cancellation token, where progress
//! goes, the HTTP client and the environment variables inputs may name, shared by every
//! platform of a job.

use std::sync::{Arc, OnceLock};

use crate::env::Env;
use crate::image::Cancel;
use crate::reporter::{NoReporter, Reporter};

use super::Error;

/// The runtime of a build: cancellation, progress and the HTTP client (made once, on first
/// use). Cheap to clone; one context serves every platform of a job.
#[derive(Clone)]
pub struct Context {
    cancel: Cancel,
    reporter: Arc<dyn Reporter>,
    client: Arc<OnceLock<reqwest_middleware::ClientWithMiddleware>>,
    env: Arc<Env>,
    /// The warnings given so far, each given once per job (every platform shares them).
    warned: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl Context {
    /// A context that is never cancelled and reports nowhere.
    pub fn new() -> Self {
        Self {
            cancel: Cancel::new(),
            reporter: Arc::new(NoReporter),
            client: Arc::default(),
            env: Arc::default(),
            warned: Arc::default(),
        }
    }

    /// A flag that stops the build when set.
    #[must_use]
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Where progress goes. By default, nowhere.
    #[must_use]
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// The environment variables inputs may name (`${VAR}` in a `pip:` section). By
    /// default, none.
    #[must_use]
    pub fn with_env(mut self, env: Env) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// The environment variables inputs may name.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The flag that stops the build.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Where progress goes.
    pub fn reporter(&self) -> &dyn Reporter {
        self.reporter.as_ref()
    }

    /// Where progress goes, to share.
    pub(crate) fn reporter_arc(&self) -> Arc<dyn Reporter> {
        self.reporter.clone()
    }

    /// Reports `message` as a warning unless this context reported it already (a job's
    /// platforms share one context, so a warning about the job is given once).
    pub(crate) fn warn_once(&self, message: &str) {
        let first = self
            .warned
            .lock()
            .map(|mut w| w.insert(message.to_string()))
            .unwrap_or(true);
        if first {
            self.reporter.warning(message);
        }
    }

    /// The HTTP client for channels and packages.
    pub(crate) fn client(&self) -> reqwest_middleware::ClientWithMiddleware {
        self.client
            .get_or_init(crate::conda::solve::http_client)
            .clone()
    }

    /// Fails when the build was cancelled.
    pub(crate) fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }

    /// Runs `work` until it ends or the build is cancelled.
    pub(crate) async fn cancellable<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        tokio::select! {
            out = work => Ok(out),
            () = self.cancel.cancelled() => Err(Error::cancelled()),
        }
    }
}
