//! What an image holds: its layers with sizes, digests and the conda packages each carries
//! (read from the `conda-meta` records in the layer), the packages the whole image holds, its
//! config and total size.

use std::ops::Range;

use serde::Serialize;

use crate::describe::records::{Environment, Package};
use crate::image::layer::LayerSource;
use crate::image::{Cancel, ConfigFile, Digest, Error, Image, Result};

/// One layer of a [`Report`].
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Digest of the stored (possibly compressed) blob, when the source names one.
    pub digest: Option<Digest>,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the stored blob, when stored.
    pub size: Option<u64>,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// The history entry's `created_by`, if any.
    pub created_by: Option<String>,
    /// Conda packages (`name-version-build`) whose records are in this layer.
    pub packages: Vec<String>,
    /// PyPI distributions (`name-version`) installed in this layer (by pip, conda-docker, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pypi: Vec<String>,
    /// Number of entries in the layer.
    pub entries: usize,
}

/// The report on an image.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `os/architecture[/variant]`.
    pub platform: String,
    /// The layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// Sum of the stored layer sizes (uncompressed where a layer is not stored).
    pub total_size: u64,
    /// Sum of the uncompressed layer sizes.
    pub total_uncompressed_size: u64,
    /// The image configuration.
    pub config: ConfigFile,
    /// The conda packages the image holds (a higher layer's records replacing or deleting a
    /// lower one's), by prefix and name.
    pub packages: Vec<Package>,
    /// The PyPI distributions the image holds that conda did not install.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pypi: Vec<crate::describe::records::PypiPackage>,
}

/// Reads every layer of `image` (checking its digests) and reports what it holds.
pub fn inspect(image: &Image, cancel: &Cancel) -> Result<Report> {
    let mut stack = Stack::default();
    stack.read(image, 0..image.layers().len(), cancel)?;
    Ok(stack.report(image))
}

/// The reports of two images, reading the layers at the bottom of both stacks once: while
/// the two have the same diff_ids from the bottom up, each such layer (and so the records
/// under the next one) is the same in both, and is read from `a` only.
pub fn inspect_pair(a: &Image, b: &Image, cancel: &Cancel) -> Result<(Report, Report)> {
    let common = a
        .layers()
        .iter()
        .zip(b.layers())
        .take_while(|(x, y)| x.diff_id().is_some() && x.diff_id() == y.diff_id())
        .count();
    let mut stack_a = Stack::default();
    stack_a.read(a, 0..common, cancel)?;
    let mut stack_b = stack_a.clone();
    // B's own blobs and history for the shared layers.
    let history = created_by(b);
    for (i, (report, layer)) in stack_b.layers.iter_mut().zip(b.layers()).enumerate() {
        (report.digest, report.size) = stored(layer);
        report.created_by = history.get(i).cloned().flatten();
    }
    stack_a.read(a, common..a.layers().len(), cancel)?;
    stack_b.read(b, common..b.layers().len(), cancel)?;
    Ok((stack_a.report(a), stack_b.report(b)))
}

/// The layers of an image read so far, bottom first, and the records they leave.
#[derive(Clone, Default)]
struct Stack {
    layers: Vec<LayerReport>,
    environment: Environment,
}

/// Each layer's history entry's `created_by`, bottom first.
fn created_by(image: &Image) -> Vec<Option<String>> {
    image
        .config()
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone())
        .collect()
}

/// A layer's stored digest and size, when it is a stored blob.
fn stored(layer: &crate::image::Layer) -> (Option<Digest>, Option<u64>) {
    match layer.source() {
        LayerSource::Blob { digest, range, .. } => (digest.clone(), Some(range.size)),
        LayerSource::Remote(w) => (Some(w.digest.clone()), Some(w.size)),
        LayerSource::Tar(_) => (None, None),
    }
}

impl Stack {
    /// Reads the layers `which` of `image` (the next ones up) on top of the stack.
    fn read(&mut self, image: &Image, which: Range<usize>, cancel: &Cancel) -> Result<()> {
        let history = created_by(image);
        let first = which.start;
        for (i, layer) in image.layers()[which].iter().enumerate() {
            let below = &self.environment;
            let (scanned, written) = layer.read_tar(cancel, |reader| {
                crate::describe::records::scan(reader, below)
            })?;
            let mut packages: Vec<String> = scanned.records.iter().map(|(_, p)| p.dist()).collect();
            packages.sort();
            let mut pypi: Vec<String> = scanned.pypi.iter().map(|(_, p)| p.dist()).collect();
            pypi.sort();
            let entries = scanned.entries;
            self.environment
                .apply(scanned)
                .map_err(|e| Error::invalid(layer.description(), e.to_string()))?;
            let (digest, size) = stored(layer);
            self.layers.push(LayerReport {
                digest,
                diff_id: written.diff_id,
                size,
                uncompressed_size: written.size,
                created_by: history.get(first + i).cloned().flatten(),
                packages,
                pypi,
                entries,
            });
        }
        Ok(())
    }

    /// The report on `image`, whose layers this stack read.
    fn report(self, image: &Image) -> Report {
        let layers = self.layers;
        let total_uncompressed_size = layers.iter().map(|l| l.uncompressed_size).sum();
        let total_size = layers
            .iter()
            .map(|l| l.size.unwrap_or(l.uncompressed_size))
            .sum();
        let mut config = image.config().clone();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
        Report {
            platform: image.platform().to_string(),
            layers,
            total_size,
            total_uncompressed_size,
            config,
            packages: self.environment.packages(),
            pypi: self.environment.pypi(),
        }
    }
}
