//! Manifests, indexes and descriptors (OCI image-spec, also read in Docker's schema 2 form).
//!
//! Our own types rather than `oci-spec`'s: those keep annotations in a `HashMap`, whose
//! serialization order varies from run to run and would break reproducible digests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Platform;
use super::digest::Digest;

/// The annotation that names an image in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A reference to a blob: its media type, digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations (sorted, so serialization is stable).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform, in an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    /// The artifact type of the manifest it points at (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The descriptor of the blob `bytes`, a `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// The platform of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest: a config and layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// What an artifact manifest holds (an SBOM, a signature), per OCI 1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifest an artifact refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// An image index (or Docker manifest list): manifests for several platforms or names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The entries.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The `org.opencontainers.image.ref.name` annotation, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// The entry's platform, if it names one.
    pub fn platform(&self) -> Option<Platform> {
        self.platform.as_ref().map(|p| Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
        })
    }

    /// A short name for messages: its ref name, else its platform, else its digest.
    pub fn describe(&self) -> String {
        match (self.ref_name(), self.platform()) {
            (Some(name), _) => name.to_string(),
            (None, Some(p)) => p.to_string(),
            (None, None) => self.digest.to_string(),
        }
    }
}

impl Index {
    /// The index as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an index of strings and numbers serializes")
    }
}

/// True for the media types of an OCI index or a Docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == super::media_type::OCI_INDEX
        || media_type == super::media_type::DOCKER_MANIFEST_LIST
}

/// The entry of an index for `platform` (an absent variant matches any).
pub fn for_platform<'a>(entries: &'a [Descriptor], platform: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .find(|d| d.platform().is_some_and(|p| platform.matches(&p)))
}

/// What the entries offer, for a "not found" message.
pub fn describe_all(entries: &[Descriptor]) -> String {
    entries
        .iter()
        .map(Descriptor::describe)
        .collect::<Vec<_>>()
        .join(", ")
}
