//! The OCI image layout: a directory with `oci-layout`, `index.json` and `blobs/sha256/`.
//!
//! Reads layouts with several images, nested indexes and gzip/zstd/plain layers. Writes new
//! layers gzip-compressed, each blob to a temporary file renamed to its digest when complete, and
//! `index.json` last (by rename), so the layout is never left pointing at a missing blob. Adding
//! an image keeps the others; a ref name already present is moved to the new image.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{WrittenImage, persist};
use crate::image::layer::{FileRange, LayerSource};
use crate::image::manifest::{Descriptor, DescriptorPlatform, Index, Manifest, REF_NAME};
use crate::image::{
    Cancel, Compression, ConfigFile, Digest, Encoding, Error, Image, Layer, Platform, Reference,
    Result, WrittenLayer, media_type,
};
use crate::reporter::Reporter;

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The annotation containerd and Docker use for an image's full name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// The OCI manifest for `image` with the given config and written layers.
pub fn manifest_bytes(
    image: &Image,
    config_digest: &Digest,
    config_size: u64,
    layers: &[WrittenLayer],
) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: media_type::OCI_CONFIG.into(),
            digest: config_digest.clone(),
            size: config_size,
            annotations: BTreeMap::new(),
            platform: None,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.compression.oci_media_type().into(),
                digest: l.digest.clone(),
                size: l.size,
                annotations: BTreeMap::new(),
                platform: None,
            })
            .collect(),
        annotations: image.annotations().clone(),
    };
    serde_json::to_vec(&manifest).unwrap_or_default()
}

fn manifest_descriptor(digest: &Digest, size: u64, name: Option<(&str, &str)>) -> Descriptor {
    let mut annotations = BTreeMap::new();
    if let Some((full, tag)) = name {
        annotations.insert(CONTAINERD_NAME.to_string(), full.to_string());
        annotations.insert(REF_NAME.to_string(), tag.to_string());
    }
    Descriptor {
        media_type: media_type::OCI_MANIFEST.into(),
        digest: digest.clone(),
        size,
        annotations,
        platform: None,
    }
}

/// An `index.json` naming each manifest once per tag (as Docker's `docker save` does).
pub fn index_bytes(entries: &[(Digest, u64, &[Reference])]) -> Vec<u8> {
    let mut manifests = Vec::new();
    for (digest, size, tags) in entries {
        if tags.is_empty() {
            manifests.push(manifest_descriptor(digest, *size, None));
        }
        for t in tags.iter() {
            let full = t.with_tag(t.tag_or_latest()).to_string();
            manifests.push(manifest_descriptor(
                digest,
                *size,
                Some((&full, t.tag_or_latest())),
            ));
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.into()),
        manifests,
        annotations: BTreeMap::new(),
    };
    serde_json::to_vec(&index).unwrap_or_default()
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::invalid(dir, format!("`{}` is missing", path.display())),
        _ => Error::io("reading", path)(e),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(dir, format!("`{}`: {e}", path.display())))
}

fn read_blob_json<T: serde::de::DeserializeOwned>(dir: &Path, d: &Descriptor) -> Result<T> {
    let path = blob_path(dir, &d.digest);
    let bytes = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::invalid(dir, format!("blob {} is missing", d.digest)),
        _ => Error::io("reading", &path)(e),
    })?;
    let actual = Digest::of(&bytes);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: "digest",
            layer: format!("blob `{}`", path.display()),
            expected: d.digest.clone(),
            actual,
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(dir, format!("blob {}: {e}", d.digest)))
}

fn is_index(media: &str) -> bool {
    media == media_type::OCI_INDEX || media == media_type::DOCKER_MANIFEST_LIST
}

fn describe(d: &Descriptor) -> String {
    match (&d.platform, d.ref_name()) {
        (_, Some(name)) => name.to_string(),
        (Some(p), None) => Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
        }
        .to_string(),
        (None, None) => d.digest.to_string(),
    }
}

/// Reads one image from the layout at `dir`: the one named `tag`, or the only one; an index
/// entry is resolved to the manifest for `platform`.
pub fn read(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    if !dir.is_dir() {
        return Err(Error::invalid(
            dir,
            "not a directory holding an OCI image layout",
        ));
    }
    let index: Index = read_json(dir, &dir.join("index.json"))?;
    let available = || {
        index
            .manifests
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let candidates: Vec<&Descriptor> = match tag {
        Some(t) => index
            .manifests
            .iter()
            .filter(|d| d.ref_name() == Some(t))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    let mut descriptor = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(Error::NotFound {
                location: dir.display().to_string(),
                wanted: tag.unwrap_or("an image").to_string(),
                available: available(),
            });
        }
        several => {
            // Several entries for one name: pick by platform, as from an index.
            let by_platform = several.iter().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&to_platform(p)))
            });
            match by_platform {
                Some(d) => (*d).clone(),
                None => {
                    return Err(Error::NotFound {
                        location: dir.display().to_string(),
                        wanted: format!(
                            "a single image (the layout holds several: add `:TAG`) for {platform}"
                        ),
                        available: available(),
                    });
                }
            }
        }
    };
    for _ in 0..8 {
        if !is_index(&descriptor.media_type) {
            return read_manifest(dir, &descriptor);
        }
        let nested: Index = read_blob_json(dir, &descriptor)?;
        descriptor = nested
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&to_platform(p)))
            })
            .cloned()
            .ok_or_else(|| Error::NotFound {
                location: dir.display().to_string(),
                wanted: format!("platform {platform}"),
                available: nested
                    .manifests
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    }
    Err(Error::invalid(dir, "indexes nested more than 8 deep"))
}

fn to_platform(p: &DescriptorPlatform) -> Platform {
    Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
    }
}

fn read_manifest(dir: &Path, descriptor: &Descriptor) -> Result<Image> {
    let manifest: Manifest = read_blob_json(dir, descriptor)?;
    let config: ConfigFile = read_blob_json(dir, &manifest.config)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid(
            dir,
            format!(
                "manifest {} lists {} layers but its config {} diff_ids",
                descriptor.digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
        let path = blob_path(dir, &d.digest);
        let len = fs::metadata(&path)
            .map_err(|_| Error::invalid(dir, format!("layer blob {} is missing", d.digest)))?
            .len();
        if len != d.size {
            return Err(Error::invalid(
                dir,
                format!(
                    "layer blob {} is {len} bytes, the manifest says {}",
                    d.digest, d.size
                ),
            ));
        }
        let compression = Compression::from_media_type(&d.media_type).ok_or_else(|| {
            Error::invalid(
                dir,
                format!(
                    "layer {} has unsupported media type `{}`",
                    d.digest, d.media_type
                ),
            )
        })?;
        layers.push(Layer::from_blob(
            LayerSource::Blob {
                range: FileRange {
                    path,
                    offset: 0,
                    size: d.size,
                },
                compression,
                digest: Some(d.digest.clone()),
            },
            Some(diff_id.clone()),
            format!("layer {} of {}", d.digest, dir.display()),
        ));
    }
    let mut image = Image::from_parts(config, layers).map_err(|r| Error::invalid(dir, r))?;
    *image.annotations_mut() = manifest.annotations;
    Ok(image)
}

/// Writes `bytes` as a blob of the layout, unless it is already there.
fn write_blob(dir: &Path, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::of(bytes);
    let path = blob_path(dir, &digest);
    if !path.exists() {
        let mut temp = tempfile::NamedTempFile::new_in(dir.join("blobs/sha256"))
            .map_err(Error::io("writing", &path))?;
        temp.write_all(bytes).map_err(Error::io("writing", &path))?;
        persist(temp, &path)?;
    }
    Ok(digest)
}

/// Writes `image` into the layout at `dir` (created if missing), named `tag` if given.
pub fn write(
    image: &Image,
    dir: &Path,
    tag: Option<&str>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    let created = !dir.exists();
    let result = write_inner(image, dir, tag, cancel, reporter);
    if result.is_err() && created {
        let _ = fs::remove_dir_all(dir);
    }
    result
}

fn write_inner(
    image: &Image,
    dir: &Path,
    tag: Option<&str>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    let output_err = |reason: String| Error::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(output_err("it exists and is not a directory".into()));
    }
    let index_path = dir.join("index.json");
    let mut index: Index = if index_path.exists() {
        read_json(dir, &index_path)?
    } else {
        if dir.exists()
            && fs::read_dir(dir)
                .map_err(Error::io("reading", dir))?
                .next()
                .is_some()
        {
            return Err(output_err(
                "it is a non-empty directory without an OCI layout's index.json".into(),
            ));
        }
        Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    };
    fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| output_err(e.to_string()))?;
    fs::write(dir.join("oci-layout"), OCI_LAYOUT_FILE)
        .map_err(Error::io("writing", dir.join("oci-layout")))?;

    let total = image.layers().len();
    let mut written_layers = Vec::new();
    for (i, layer) in image.layers().iter().enumerate() {
        reporter.layer_started(i, total, layer);
        let temp = tempfile::NamedTempFile::new_in(dir.join("blobs/sha256"))
            .map_err(Error::io("writing", dir))?;
        let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
        let written = layer.write_to(&mut out, Encoding::KeepOrGzip, cancel)?;
        out.flush().map_err(Error::io("writing", temp.path()))?;
        drop(out);
        let path = blob_path(dir, &written.digest);
        if !path.exists() {
            persist(temp, &path)?;
        }
        reporter.layer_finished(i, layer, &written);
        written_layers.push(written);
    }
    let diff_ids = written_layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = image.config_bytes(diff_ids);
    let config_digest = write_blob(dir, &config)?;
    let manifest = manifest_bytes(image, &config_digest, config.len() as u64, &written_layers);
    let manifest_digest = write_blob(dir, &manifest)?;
    cancel.check().map_err(Error::io("writing", dir))?;

    let mut descriptor = manifest_descriptor(&manifest_digest, manifest.len() as u64, None);
    if let Some(tag) = tag {
        index.manifests.retain(|d| d.ref_name() != Some(tag));
        descriptor.annotations.insert(REF_NAME.into(), tag.into());
    } else {
        index
            .manifests
            .retain(|d| d.digest != manifest_digest || d.ref_name().is_some());
    }
    index.manifests.push(descriptor);
    let bytes =
        serde_json::to_vec(&index).map_err(|e| Error::io("writing", &index_path)(e.into()))?;
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("writing", &index_path))?;
    temp.write_all(&bytes)
        .map_err(Error::io("writing", &index_path))?;
    persist(temp, &index_path)?;
    Ok(WrittenImage {
        config_digest,
        manifest_digest: Some(manifest_digest),
        layers: written_layers,
        push: None,
    })
}
