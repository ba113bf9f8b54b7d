//! What an image holds: its layers with sizes, digests and the conda packages each carries
//! (read from the `conda-meta` records in the layer), the packages the whole image holds, its
//! config and total size.

use serde::Serialize;

use crate::image::layer::LayerSource;
use crate::image::{Cancel, ConfigFile, Digest, Error, Image, Result};
use crate::records::{Environment, Package};

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
}

/// Reads every layer of `image` (checking its digests) and reports what it holds.
pub fn inspect(image: &Image, cancel: &Cancel) -> Result<Report> {
    let history: Vec<_> = image
        .config()
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .collect();
    let mut layers = Vec::new();
    let mut environment = Environment::default();
    for (i, layer) in image.layers().iter().enumerate() {
        let below = &environment;
        let (scanned, written) =
            layer.read_tar(cancel, |reader| crate::records::scan(reader, below))?;
        let mut packages: Vec<String> = scanned.records.iter().map(|(_, p)| p.dist()).collect();
        packages.sort();
        let entries = scanned.entries;
        environment
            .apply(scanned)
            .map_err(|e| Error::invalid(layer.description(), e.to_string()))?;
        let (digest, size) = match layer.source() {
            LayerSource::Blob { digest, range, .. } => (digest.clone(), Some(range.size)),
            LayerSource::Tar(_) => (None, None),
        };
        let report = LayerReport {
            digest,
            diff_id: written.diff_id,
            size,
            uncompressed_size: written.size,
            created_by: history.get(i).and_then(|h| h.created_by.clone()),
            packages,
            entries,
        };
        layers.push(report);
    }
    let total_uncompressed_size = layers.iter().map(|l| l.uncompressed_size).sum();
    let total_size = layers
        .iter()
        .map(|l| l.size.unwrap_or(l.uncompressed_size))
        .sum();
    let mut config = image.config().clone();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.clone()).collect();
    Ok(Report {
        platform: image.platform().to_string(),
        layers,
        total_size,
        total_uncompressed_size,
        config,
        packages: environment.packages(),
    })
}
