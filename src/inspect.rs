//! What an image holds: its layers with sizes, digests and the conda packages each carries
//! (read from the `conda-meta` records in the layer), its config and total size.

use std::io::{self, Read};

use serde::Serialize;

use crate::image::layer::LayerSource;
use crate::image::{Cancel, ConfigFile, Digest, Image, Result};

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
    for (i, layer) in image.layers().iter().enumerate() {
        let ((packages, entries), written) = layer.read_tar(cancel, list_packages)?;
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
    })
}

/// The conda packages recorded in a layer tar (`.../conda-meta/NAME-VERSION-BUILD.json`), and
/// its entry count. Reads the tar to its end, so the writer side never blocks.
fn list_packages(reader: &mut dyn Read) -> io::Result<(Vec<String>, usize)> {
    let mut archive = tar::Archive::new(reader);
    let mut packages = Vec::new();
    let mut entries = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        entries += 1;
        let path = entry.path()?.into_owned();
        let in_meta = path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "conda-meta");
        if in_meta
            && path.extension().is_some_and(|e| e == "json")
            && entry.header().entry_type().is_file()
        {
            let size = entry.size();
            let bytes = crate::capped::read_capped(&mut entry, Some(size), crate::capped::JSON_CAP)
                .map_err(|e| io::Error::new(e.kind(), format!("`{}` {e}", path.display())))?;
            #[derive(serde::Deserialize)]
            struct Record {
                name: String,
                version: String,
                build: String,
            }
            if let Ok(r) = serde_json::from_slice::<Record>(&bytes) {
                packages.push(format!("{}-{}-{}", r.name, r.version, r.build));
            }
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    packages.sort();
    Ok((packages, entries))
}
