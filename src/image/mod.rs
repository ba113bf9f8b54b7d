//! The image model: an image is a config and a stack of layers, independent of any transport.
//!
//! [`Image`] holds a [`ConfigFile`] and [`Layer`]s whose bytes come from a stored blob or are
//! written on demand ([`layer_tar`]). Transports in [`crate::transport`] read and write images;
//! what an image becomes when written (each layer's blob in the wanted [`compress`]ion, the
//! config, the manifest, indexes) is decided in one place, [`resolve`].

pub mod cancel;
pub mod checked_tar;
pub mod compress;
pub mod config;
pub mod digest;
pub mod error;
pub mod files;
pub mod gzip;
pub mod host;
pub mod layer;
pub mod layer_tar;
pub mod manifest;
pub mod mutate;
pub mod reference;
pub mod referrer;
pub mod resolve;

use std::collections::BTreeMap;
use std::fmt;

pub use cancel::Cancel;
pub use compress::LayerCompression;
pub use config::{ConfigFile, History, RunConfig};
pub use digest::Digest;
pub use error::{Error, Result};
pub use layer::{Compression, Encoding, Layer, WrittenLayer};
pub use reference::Reference;

/// OCI media types used in manifests and indexes.
pub mod media_type {
    /// An OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// An OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// An OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// The empty blob (`{}`) an artifact manifest names as its config.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// A Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// A Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
}

/// An OS/architecture pair an image runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// Go's architecture name: `amd64`, `arm64`, `ppc64le`, `s390x`.
    pub architecture: String,
    /// `v8` for arm64, if given.
    pub variant: Option<String>,
}

impl Platform {
    /// A Linux platform for `architecture`.
    pub fn linux(architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(Into::into),
        }
    }

    /// True if an image made for `other` runs here (an absent variant matches any).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || other.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A container image: its configuration and layers, bottom first.
#[derive(Clone, Debug)]
pub struct Image {
    config: ConfigFile,
    layers: Vec<Layer>,
    annotations: BTreeMap<String, String>,
}

impl Image {
    /// An image with no layers for `platform` (Docker's `scratch`).
    pub fn scratch(platform: &Platform) -> Self {
        Self {
            config: ConfigFile {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                ..Default::default()
            },
            layers: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// An image from a config and its layers; the config's diff_ids must match the layer count.
    pub fn from_parts(config: ConfigFile, layers: Vec<Layer>) -> Result<Self, String> {
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(format!(
                "the config lists {} diff_ids but the manifest {} layers",
                config.rootfs.diff_ids.len(),
                layers.len()
            ));
        }
        Ok(Self {
            config,
            layers,
            annotations: BTreeMap::new(),
        })
    }

    /// The configuration. Its `rootfs.diff_ids` are filled in when the image is written.
    pub fn config(&self) -> &ConfigFile {
        &self.config
    }

    /// The configuration, to edit.
    pub fn config_mut(&mut self) -> &mut ConfigFile {
        &mut self.config
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Manifest annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Manifest annotations, to edit.
    pub fn annotations_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.annotations
    }

    /// The platform the config names.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os.clone(),
            architecture: self.config.architecture.clone(),
            variant: self.config.variant.clone(),
        }
    }

    /// The config blob's bytes with `diff_ids` as its layers.
    pub fn config_bytes(&self, diff_ids: Vec<Digest>) -> Vec<u8> {
        let mut config = self.config.clone();
        config.rootfs.diff_ids = diff_ids;
        // A struct of strings, maps and vectors always serializes.
        serde_json::to_vec(&config).unwrap_or_default()
    }
}
