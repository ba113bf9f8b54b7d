//! OCI 1.1 referrers: artifacts (an SBOM, a signature) whose manifest names an image manifest
//! as its `subject`, so a registry or layout can list them beside the image.
//!
//! Registries with the referrers API associate them on push; for others (CNCF distribution
//! 2.8 has none) the spec's fallback keeps an index of them under the tag `sha256-<hex>` of the
//! subject's digest ([`fallback_tag`]). This module makes the manifests and that index; the
//! transports store them.

use std::collections::BTreeMap;

use super::manifest::{Descriptor, Index, Manifest};
use super::{Digest, media_type};

/// The empty JSON object an artifact manifest names as its config.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// An artifact to attach to an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// What it is (`application/spdx+json`): the manifest's `artifactType` and its blob's type.
    pub artifact_type: String,
    /// The blob.
    pub bytes: Vec<u8>,
    /// Annotations of the artifact manifest (`org.opencontainers.image.created`, ...).
    pub annotations: BTreeMap<String, String>,
}

/// An artifact's manifest and the blobs it names, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactManifest {
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its descriptor, as an index of referrers lists it (with `artifactType`).
    pub descriptor: Descriptor,
    /// The blobs it names (the empty config, then the artifact), with their bytes.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
}

fn blob(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor::of(media_type, bytes)
}

/// The manifest of `artifact` referring to `subject` (an image manifest's descriptor).
pub fn artifact_manifest(artifact: &Artifact, subject: &Descriptor) -> ArtifactManifest {
    let config = blob(media_type::OCI_EMPTY, EMPTY_CONFIG);
    let layer = blob(&artifact.artifact_type, &artifact.bytes);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: config.clone(),
        layers: vec![layer.clone()],
        annotations: artifact.annotations.clone(),
        artifact_type: Some(artifact.artifact_type.clone()),
        subject: Some(Descriptor {
            media_type: subject.media_type.clone(),
            digest: subject.digest.clone(),
            size: subject.size,
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }),
    };
    // A struct of strings and maps always serializes.
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let descriptor = Descriptor {
        artifact_type: Some(artifact.artifact_type.clone()),
        annotations: artifact.annotations.clone(),
        ..blob(media_type::OCI_MANIFEST, &bytes)
    };
    ArtifactManifest {
        manifest: bytes,
        descriptor,
        blobs: vec![
            (config, EMPTY_CONFIG.to_vec()),
            (layer, artifact.bytes.clone()),
        ],
    }
}

/// The tag under which a registry without the referrers API lists `subject`'s referrers.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// Whether `tag` is a referrers fallback tag (`sha256-` and 64 hex digits).
pub fn is_fallback_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The index of referrers `existing` (if any) with `added` in it, each digest once.
pub fn with_referrers(existing: Option<Index>, added: &[Descriptor]) -> Index {
    let mut index = existing.unwrap_or(Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests: Vec::new(),
        annotations: BTreeMap::new(),
    });
    for d in added {
        index.manifests.retain(|m| m.digest != d.digest);
        index.manifests.push(d.clone());
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_manifest_names_its_subject_and_type() {
        let subject = blob(media_type::OCI_MANIFEST, b"the image manifest");
        let artifact = Artifact {
            artifact_type: "application/spdx+json".into(),
            bytes: b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
            annotations: BTreeMap::new(),
        };
        let made = artifact_manifest(&artifact, &subject);
        let manifest: serde_json::Value = serde_json::from_slice(&made.manifest).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["subject"]["digest"], subject.digest.to_string());
        assert_eq!(manifest["config"]["mediaType"], media_type::OCI_EMPTY);
        assert_eq!(manifest["config"]["size"], 2);
        assert_eq!(manifest["layers"][0]["mediaType"], "application/spdx+json");
        assert_eq!(made.descriptor.digest, Digest::of(&made.manifest));
        let index = with_referrers(None, &[made.descriptor.clone(), made.descriptor.clone()]);
        assert_eq!(index.manifests.len(), 1);
        assert!(is_fallback_tag(&fallback_tag(&subject.digest)));
        assert!(!is_fallback_tag("sha256-latest"));
    }
}
