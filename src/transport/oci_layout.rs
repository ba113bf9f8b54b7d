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

use super::blob_cache::{BlobCache, compressed_blob, copy_file, needs_compression};
use super::{WrittenImage, WrittenIndex, persist};
use crate::image::layer::{FileRange, LayerSource};
use crate::image::manifest::{
    Descriptor, Index, Manifest, REF_NAME, describe_all, for_platform, is_index,
};
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

/// Where an OCI layout's files are: a directory, or a tar archive of one (oci-archive).
pub trait LayoutFiles {
    /// The directory or archive, for messages.
    fn location(&self) -> &Path;
    /// The bytes of a small file (`index.json`, a manifest, a config), by its path in the layout.
    fn read(&self, name: &str) -> Result<Vec<u8>>;
    /// Where the blob `digest` is stored.
    fn blob(&self, digest: &Digest) -> Result<FileRange>;
}

/// The files of a layout directory.
pub struct LayoutDir<'a>(pub &'a Path);

impl LayoutFiles for LayoutDir<'_> {
    fn location(&self) -> &Path {
        self.0
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.0.join(name);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::invalid(self.0, format!("`{name}` is missing")),
            _ => Error::io("reading", &path)(e),
        })
    }

    fn blob(&self, digest: &Digest) -> Result<FileRange> {
        let path = blob_path(self.0, digest);
        let size = fs::metadata(&path)
            .map_err(|_| Error::invalid(self.0, format!("blob {digest} is missing")))?
            .len();
        Ok(FileRange {
            path,
            offset: 0,
            size,
        })
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    files: &dyn LayoutFiles,
    what: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(files.location(), format!("{what}: {e}")))
}

/// Reads a blob named by `d`, checking its digest, and parses it as JSON.
fn read_blob_json<T: serde::de::DeserializeOwned>(
    files: &dyn LayoutFiles,
    d: &Descriptor,
) -> Result<T> {
    let name = format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex());
    let bytes = files.read(&name)?;
    let actual = Digest::of(&bytes);
    if actual != d.digest {
        return Err(Error::DigestMismatch {
            what: "digest",
            layer: format!("blob `{name}` of `{}`", files.location().display()),
            expected: d.digest.clone(),
            actual,
        });
    }
    parse(files, &format!("blob {}", d.digest), &bytes)
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
    read_from(&LayoutDir(dir), tag, platform)
}

/// Reads one image from an OCI layout's files (see [`read`]).
pub fn read_from(files: &dyn LayoutFiles, tag: Option<&str>, platform: &Platform) -> Result<Image> {
    let location = || files.location().display().to_string();
    let index: Index = parse(files, "index.json", &files.read("index.json")?)?;
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
                location: location(),
                wanted: tag.unwrap_or("an image").to_string(),
                available: describe_all(&index.manifests),
            });
        }
        several => {
            // Several entries for one name: pick by platform, as from an index.
            let owned: Vec<Descriptor> = several.iter().map(|d| (*d).clone()).collect();
            for_platform(&owned, platform)
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    location: location(),
                    wanted: format!(
                        "a single image for {platform} (the layout holds several: add `:TAG`)"
                    ),
                    available: describe_all(&index.manifests),
                })?
        }
    };
    for _ in 0..8 {
        if !is_index(&descriptor.media_type) {
            return read_manifest(files, &descriptor);
        }
        let nested: Index = read_blob_json(files, &descriptor)?;
        descriptor = for_platform(&nested.manifests, platform)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                location: location(),
                wanted: format!("platform {platform}"),
                available: describe_all(&nested.manifests),
            })?;
    }
    Err(Error::invalid(
        files.location(),
        "indexes nested more than 8 deep",
    ))
}

fn read_manifest(files: &dyn LayoutFiles, descriptor: &Descriptor) -> Result<Image> {
    let here = files.location();
    let manifest: Manifest = read_blob_json(files, descriptor)?;
    let config: ConfigFile = read_blob_json(files, &manifest.config)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid(
            here,
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
        let range = files.blob(&d.digest)?;
        if range.size != d.size {
            return Err(Error::invalid(
                here,
                format!(
                    "layer blob {} is {} bytes, the manifest says {}",
                    d.digest, range.size, d.size
                ),
            ));
        }
        let compression = Compression::from_media_type(&d.media_type).ok_or_else(|| {
            Error::invalid(
                here,
                format!(
                    "layer {} has unsupported media type `{}`",
                    d.digest, d.media_type
                ),
            )
        })?;
        layers.push(Layer::from_blob(
            LayerSource::Blob {
                range,
                compression,
                digest: Some(d.digest.clone()),
            },
            Some(diff_id.clone()),
            format!("layer {} of {}", d.digest, here.display()),
        ));
    }
    let mut image = Image::from_parts(config, layers).map_err(|r| Error::invalid(here, r))?;
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
    write_with_cache(image, dir, tag, None, cancel, reporter)
}

/// [`write()`], taking the compressed form of layers written before from `cache` (and keeping
/// new ones there), so an unchanged layer is not compressed again.
pub fn write_with_cache(
    image: &Image,
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    let (mut written, _) = write_new(&[image], false, dir, tag, cache, cancel, reporter)?;
    Ok(written.remove(0))
}

/// Writes a multi-platform image (one image per platform, under one OCI index) into the layout
/// at `dir`, named `tag` if given; see [`write_with_cache`].
pub fn write_index_with_cache(
    images: &[&Image],
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenIndex> {
    let (images, digest) = write_new(images, true, dir, tag, cache, cancel, reporter)?;
    Ok(WrittenIndex {
        digest,
        images,
        push: None,
    })
}

/// Writes `images` (the one image, or an index of them when `as_index`) and names it `tag`;
/// returns them and the digest `tag` names. A layout this created is removed on failure.
fn write_new(
    images: &[&Image],
    as_index: bool,
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<(Vec<WrittenImage>, Digest)> {
    let created = !dir.exists();
    let result = write_inner(images, as_index, dir, tag, cache, cancel, reporter);
    if result.is_err() && created {
        let _ = fs::remove_dir_all(dir);
    }
    result
}

fn write_inner(
    images: &[&Image],
    as_index: bool,
    dir: &Path,
    tag: Option<&str>,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<(Vec<WrittenImage>, Digest)> {
    let output_err = |reason: String| Error::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(output_err("it exists and is not a directory".into()));
    }
    let index_path = dir.join("index.json");
    let mut index: Index = if index_path.exists() {
        let files = LayoutDir(dir);
        parse(&files, "index.json", &files.read("index.json")?)?
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

    let mut written = Vec::new();
    for image in images {
        written.push(write_image(image, dir, cache, cancel, reporter)?);
    }
    cancel.check().map_err(Error::io("writing", dir))?;
    let manifests: Vec<(Digest, u64, crate::image::Platform)> = written
        .iter()
        .zip(images)
        .map(|((w, size), image)| {
            let digest = w
                .manifest_digest
                .clone()
                .expect("a layout writes manifests");
            (digest, *size, image.platform())
        })
        .collect();
    let mut descriptor = match manifests.as_slice() {
        [(digest, size, _)] if !as_index => manifest_descriptor(digest, *size, None),
        _ => {
            let bytes = Index::of_platforms(&manifests).to_bytes();
            let digest = write_blob(dir, &bytes)?;
            let mut descriptor = manifest_descriptor(&digest, bytes.len() as u64, None);
            descriptor.media_type = media_type::OCI_INDEX.into();
            descriptor
        }
    };
    if let Some(tag) = tag {
        index.manifests.retain(|d| d.ref_name() != Some(tag));
        descriptor.annotations.insert(REF_NAME.into(), tag.into());
    } else {
        index
            .manifests
            .retain(|d| d.digest != descriptor.digest || d.ref_name().is_some());
    }
    let named = descriptor.digest.clone();
    index.manifests.push(descriptor);
    let bytes =
        serde_json::to_vec(&index).map_err(|e| Error::io("writing", &index_path)(e.into()))?;
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).map_err(Error::io("writing", &index_path))?;
    temp.write_all(&bytes)
        .map_err(Error::io("writing", &index_path))?;
    persist(temp, &index_path)?;
    Ok((written.into_iter().map(|(w, _)| w).collect(), named))
}

/// Writes the blobs and the manifest of `image`; returns it as written, with the manifest's size.
fn write_image(
    image: &Image,
    dir: &Path,
    cache: Option<&BlobCache>,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<(WrittenImage, u64)> {
    let total = image.layers().len();
    let mut written_layers = Vec::new();
    for (i, layer) in image.layers().iter().enumerate() {
        reporter.layer_started(i, total, layer);
        let written = match cache.filter(|_| needs_compression(layer)) {
            Some(c) => {
                // Compressed once into the shared store, copied from there.
                let stored = compressed_blob(layer, c, cancel)?;
                let path = blob_path(dir, &stored.written.digest);
                if !path.exists() {
                    copy_file(&stored.path, &path)?;
                }
                stored.written
            }
            None => {
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
                written
            }
        };
        reporter.layer_finished(i, layer, &written);
        written_layers.push(written);
    }
    let diff_ids = written_layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = image.config_bytes(diff_ids);
    let config_digest = write_blob(dir, &config)?;
    let manifest = manifest_bytes(image, &config_digest, config.len() as u64, &written_layers);
    let manifest_digest = write_blob(dir, &manifest)?;
    Ok((
        WrittenImage {
            config_digest,
            manifest_digest: Some(manifest_digest),
            layers: written_layers,
            push: None,
        },
        manifest.len() as u64,
    ))
}
