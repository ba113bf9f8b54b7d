//! The `docker save` tarball: `manifest.json`, a config blob and one tar per layer.
//!
//! Reads what Docker (20.10's `<id>/layer.tar` and 25's `blobs/sha256/...`), podman (also
//! multi-image archives) and skopeo (layers as symlinks) write. Writes Docker 25's layout, which
//! Docker 20.10 and podman load: `blobs/sha256/<hex>` for every blob, plus `manifest.json`,
//! `repositories`, `index.json` and `oci-layout`. Layers are streamed into the archive and hashed
//! on the way (the blob cache's own tars are copied as they are: they are named by their checked
//! digest); the tar header is filled in afterwards, so no layer is held or read twice.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tarball::{ArchiveIndex, blob_name, sniff, write_archive};
use super::{Location, Publishable, WriteContext, Written};
use crate::image::layer::LayerSource;
use crate::image::resolve::{IndexEntry, index};
use crate::image::{ConfigFile, Error, Image, Layer, Reference, Result};

/// One entry of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Reads one image from a docker-archive; `reference` (`name:tag`) picks one of several.
pub fn read(path: &Path, reference: Option<&str>) -> Result<Image> {
    let index = ArchiveIndex::read(path, "a docker-archive")?;
    if !index.contains("manifest.json") {
        let hint = if index.contains("repositories") {
            "it has no manifest.json: the legacy v1 `docker save` format is not supported"
        } else {
            "it has no manifest.json, so it is not a `docker save` archive"
        };
        return Err(Error::invalid(path, hint));
    }
    let manifest: Vec<ManifestEntry> =
        serde_json::from_slice(&index.read_small(path, "manifest.json")?)
            .map_err(|e| Error::invalid(path, format!("manifest.json: {e}")))?;
    let entry = select(path, &manifest, reference)?;
    let config_bytes = index.read_small(path, &entry.config)?;
    let config: ConfigFile = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::invalid(path, format!("config `{}`: {e}", entry.config)))?;
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::invalid(
            path,
            format!(
                "the config lists {} diff_ids but manifest.json {} layers",
                diff_ids.len(),
                entry.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (i, (name, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
        let range = index.range(path, name)?;
        let compression = sniff(&range)?;
        layers.push(Layer::from_blob(
            LayerSource::Blob {
                range,
                compression,
                digest: None,
            },
            Some(diff_id),
            format!("layer {} of {}", i + 1, path.display()),
        ));
    }
    Image::from_parts(config, layers).map_err(|reason| Error::invalid(path, reason))
}

fn select<'a>(
    path: &Path,
    manifest: &'a [ManifestEntry],
    reference: Option<&str>,
) -> Result<&'a ManifestEntry> {
    let tags = |e: &ManifestEntry| e.repo_tags.clone().unwrap_or_default();
    let available = || {
        let all: Vec<String> = manifest.iter().flat_map(tags).collect();
        if all.is_empty() {
            "untagged images only".to_string()
        } else {
            all.join(", ")
        }
    };
    match reference {
        None if manifest.len() == 1 => Ok(&manifest[0]),
        None if manifest.is_empty() => Err(Error::invalid(path, "manifest.json lists no image")),
        None => Err(Error::NotFound {
            location: path.display().to_string(),
            wanted: "a single image (the archive holds several: add `:NAME:TAG`)".into(),
            available: available(),
        }),
        Some(wanted) => {
            let wanted_ref = wanted.parse::<Reference>().ok();
            manifest
                .iter()
                .find(|e| {
                    tags(e).iter().any(|t| {
                        t == wanted
                            || (wanted_ref.is_some() && t.parse::<Reference>().ok() == wanted_ref)
                    })
                })
                .ok_or_else(|| Error::NotFound {
                    location: path.display().to_string(),
                    wanted: wanted.to_string(),
                    available: available(),
                })
        }
    }
}

/// Parses `manifest.json` and picks an image from it, with and without a name (for fuzzing).
#[doc(hidden)]
pub fn fuzz_manifest(bytes: &[u8]) {
    let path = Path::new("manifest.json");
    if let Ok(manifest) = serde_json::from_slice::<Vec<ManifestEntry>>(bytes) {
        let _ = select(path, &manifest, None);
        for tag in manifest.iter().flat_map(|e| e.repo_tags.iter().flatten()) {
            let picked = select(path, &manifest, Some(tag));
            assert!(picked.is_ok(), "the tag `{tag}` it lists is not found");
        }
    }
}

/// The tags as `docker images` shows them, for `RepoTags` and `repositories`.
fn repo_tags(tags: &[Reference]) -> Vec<String> {
    tags.iter().map(Reference::familiar_tagged).collect()
}

/// Writes the image `what` holds as a docker-archive at `path`, tagged with every one of the
/// context's tags (an archive holds one platform: an index is refused). Layers that are the
/// blob store's own uncompressed blobs are copied as they are (they are named by their checked
/// digest, so they are not hashed again).
///
/// Written under a temporary name next to `path` and renamed when complete, so a failed or
/// cancelled write leaves no file behind.
pub fn write(what: Publishable<'_>, path: &Path, ctx: &WriteContext<'_>) -> Result<Written> {
    let location = Location::DockerArchive {
        path: path.to_path_buf(),
        reference: None,
    };
    let image = what.single(path)?;
    let tags = ctx.tags;
    let written = write_archive(
        image,
        path,
        ctx.options.encoding(&location),
        ctx,
        |resolved| {
            let entries: Vec<IndexEntry> = if tags.is_empty() {
                vec![IndexEntry::manifest(resolved)]
            } else {
                tags.iter()
                    .map(|t| IndexEntry {
                        image_name: Some(t.with_tag(t.tag_or_latest()).to_string()),
                        ..IndexEntry::manifest(resolved).named(Some(t.tag_or_latest()))
                    })
                    .collect()
            };
            let familiar = repo_tags(tags);
            let manifest = vec![ManifestEntry {
                config: blob_name(&resolved.config_digest),
                repo_tags: (!familiar.is_empty()).then_some(familiar),
                layers: resolved
                    .layers
                    .iter()
                    .map(|l| blob_name(&l.digest))
                    .collect(),
            }];
            let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            if let Some(top) = resolved.layers.last() {
                for t in tags {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(t.tag_or_latest().to_string(), top.diff_id.hex().to_string());
                }
            }
            Ok(vec![
                ("index.json", index(&entries).to_bytes()),
                ("manifest.json", serde_json::to_vec(&manifest)?),
                ("repositories", serde_json::to_vec(&repositories)?),
            ])
        },
    )?;
    Ok(Written::new(location, vec![written], None))
}
