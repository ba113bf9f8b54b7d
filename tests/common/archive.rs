//! Reading what a docker-archive holds: its manifest, config and layer tars.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The files of a tar archive, by name.
pub fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// manifest.json's layers, config and the archive's files.
pub struct Archive {
    /// Every file of the archive, by name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The image config.
    pub config: serde_json::Value,
    /// The layer files, bottom first.
    pub layers: Vec<String>,
}

impl Archive {
    /// The config's diff_ids, bottom first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    }

    /// The files of layer `i`.
    pub fn layer(&self, i: usize) -> BTreeMap<String, Vec<u8>> {
        tar_files(&self.files[&self.layers[i]])
    }
}

/// Reads the docker-archive at `path`.
pub fn open(path: &Path) -> Archive {
    let files = tar_files(&std::fs::read(path).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let layers = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    Archive {
        files,
        config,
        layers,
    }
}
