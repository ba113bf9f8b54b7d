//! Progress events, so a front end can show bars without the library knowing how.

use crate::image::{Layer, WrittenLayer};

/// The steps of a build, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading the base image.
    ReadBase,
    /// Fetching repodata and solving the specs.
    Solve,
    /// Fetching packages and composing their layers.
    Install,
    /// Writing layers, config and manifest to an output.
    Write,
}

/// Receives progress events; every method does nothing by default.
pub trait Reporter: Send + Sync {
    /// A stage began.
    fn stage_started(&self, _stage: Stage, _message: &str) {}
    /// A stage ended.
    fn stage_finished(&self, _stage: Stage, _message: &str) {}
    /// Packages to download and install.
    fn install_started(&self, _packages: usize) {}
    /// The bytes downloaded so far in this install.
    fn bytes_downloaded(&self, _bytes: u64) {}
    /// One package was fetched and read.
    fn package_installed(&self, _name: &str) {}
    /// Something the user should know that does not stop the build (a clobbered path).
    fn warning(&self, _message: &str) {}
    /// Layer `index` of `total` is about to be written.
    fn layer_started(&self, _index: usize, _total: usize, _layer: &Layer) {}
    /// Layer `index` was written.
    fn layer_finished(&self, _index: usize, _layer: &Layer, _written: &WrittenLayer) {}
}

/// A reporter that ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {}
