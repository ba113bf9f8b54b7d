//! The `docker save` tarball: `manifest.json`, a config blob and one tar per layer.
//!
//! Reads what Docker (20.10's `<id>/layer.tar` and 25's `blobs/sha256/...`), podman (also
//! multi-image archives) and skopeo (layers as symlinks) write. Writes Docker 25's layout, which
//! Docker 20.10 and podman load: `blobs/sha256/<hex>` for every blob, plus `manifest.json`,
//! `repositories`, `index.json` and `oci-layout`. Layers are streamed into the archive and hashed
//! on the way; the tar header is filled in afterwards, so no layer is held or read twice.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{WrittenImage, oci_layout, persist};
use crate::image::layer::{FileRange, LayerSource};
use crate::image::{
    Cancel, Compression, ConfigFile, Digest, Encoding, Error, Image, Layer, Reference, Result,
};
use crate::reporter::Reporter;

/// One entry of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The regular files and symlinks of an archive, by normalized name.
struct ArchiveIndex {
    files: HashMap<String, (u64, u64)>,
    links: HashMap<String, String>,
}

fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

impl ArchiveIndex {
    fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("reading", path))?;
        let mut archive = tar::Archive::new(io::BufReader::new(file));
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e: io::Error| {
            // The tar reader's messages can quote raw bytes of the file: keep the first line.
            let msg = e.to_string();
            let first: String = msg
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            Error::invalid(path, format!("not a readable tar archive ({first})"))
        };
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let Some(name) = normalize(&name) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name().map_err(bad)? {
                        links.insert(name, target.to_string_lossy().into_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(Self { files, links })
    }

    /// The byte range of `name`, following symlinks (relative to the link's directory).
    fn range(&self, archive: &Path, name: &str) -> Result<FileRange> {
        let mut current = normalize(name).ok_or_else(|| {
            Error::invalid(
                archive,
                format!("`{name}` is an absolute path or leaves the archive"),
            )
        })?;
        for _ in 0..16 {
            if let Some(&(offset, size)) = self.files.get(&current) {
                return Ok(FileRange {
                    path: archive.to_path_buf(),
                    offset,
                    size,
                });
            }
            let Some(target) = self.links.get(&current) else {
                return Err(Error::invalid(
                    archive,
                    format!("`{name}` is listed in manifest.json but not in the archive"),
                ));
            };
            let base = Path::new(&current).parent().unwrap_or(Path::new(""));
            current = normalize(&base.join(target).to_string_lossy()).ok_or_else(|| {
                Error::invalid(archive, format!("link `{current}` leaves the archive"))
            })?;
        }
        Err(Error::invalid(
            archive,
            format!("`{name}`: too many levels of symlinks"),
        ))
    }

    fn read_small(&self, archive: &Path, name: &str) -> Result<Vec<u8>> {
        let range = self.range(archive, name)?;
        if range.size > 64 * 1024 * 1024 {
            return Err(Error::invalid(
                archive,
                format!("`{name}` is too large for JSON"),
            ));
        }
        let mut f = File::open(archive).map_err(Error::io("reading", archive))?;
        f.seek(SeekFrom::Start(range.offset))
            .map_err(Error::io("reading", archive))?;
        let mut buf = Vec::with_capacity(range.size as usize);
        f.take(range.size)
            .read_to_end(&mut buf)
            .map_err(Error::io("reading", archive))?;
        if buf.len() as u64 != range.size {
            return Err(Error::invalid(archive, format!("`{name}` is truncated")));
        }
        Ok(buf)
    }
}

/// Reads one image from a docker-archive; `reference` (`name:tag`) picks one of several.
pub fn read(path: &Path, reference: Option<&str>) -> Result<Image> {
    if path.is_dir() {
        return Err(Error::invalid(
            path,
            "is a directory; a docker-archive is a tar file (use `oci:DIR` for a layout)",
        ));
    }
    let index = ArchiveIndex::read(path)?;
    if !index.files.contains_key("manifest.json") {
        let hint = if index.files.contains_key("repositories") {
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
            format!("layer {} ({name}) of {}", i + 1, path.display()),
        ));
    }
    Image::from_parts(config, layers).map_err(|reason| Error::invalid(path, reason))
}

fn sniff(range: &FileRange) -> Result<Compression> {
    let mut f = File::open(&range.path).map_err(Error::io("reading", &range.path))?;
    f.seek(SeekFrom::Start(range.offset))
        .map_err(Error::io("reading", &range.path))?;
    let mut magic = [0u8; 4];
    let n = f
        .take(range.size.min(4))
        .read(&mut magic)
        .map_err(Error::io("reading", &range.path))?;
    Ok(Compression::sniff(&magic[..n]))
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

/// A tar archive writer whose entries can be streamed before their size and name are known.
struct StreamingTar<W: Write + Seek> {
    out: W,
    mtime: u64,
}

impl<W: Write + Seek> StreamingTar<W> {
    fn header(
        &self,
        name: &str,
        size: u64,
        kind: tar::EntryType,
        mode: u32,
    ) -> io::Result<tar::Header> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)?;
        h.set_size(size);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        Ok(h)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (512 - size % 512) % 512;
        self.out.write_all(&[0u8; 512][..rem as usize])
    }

    fn append_dir(&mut self, name: &str) -> io::Result<()> {
        let h = self.header(name, 0, tar::EntryType::Directory, 0o755)?;
        self.out.write_all(h.as_bytes())
    }

    fn append_bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let h = self.header(name, data.len() as u64, tar::EntryType::Regular, 0o644)?;
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// Streams an entry: `write` produces its bytes and returns its name, known only at the end.
    /// When `write` returns `None` (a duplicate), the entry is rolled back.
    fn append_streamed<T>(
        &mut self,
        write: impl FnOnce(&mut W) -> Result<(Option<String>, T)>,
        io_err: impl Fn(io::Error) -> Error,
    ) -> Result<T> {
        let start = self.out.stream_position().map_err(&io_err)?;
        self.out.write_all(&[0u8; 512]).map_err(&io_err)?;
        let (name, value) = write(&mut self.out)?;
        let end = self.out.stream_position().map_err(&io_err)?;
        match name {
            Some(name) => {
                let size = end - start - 512;
                let h = self
                    .header(&name, size, tar::EntryType::Regular, 0o644)
                    .map_err(&io_err)?;
                self.out.seek(SeekFrom::Start(start)).map_err(&io_err)?;
                self.out.write_all(h.as_bytes()).map_err(&io_err)?;
                self.out.seek(SeekFrom::Start(end)).map_err(&io_err)?;
                self.pad(size).map_err(&io_err)?;
            }
            None => {
                self.out.seek(SeekFrom::Start(start)).map_err(&io_err)?;
            }
        }
        Ok(value)
    }
}

/// The tags as `docker images` shows them, for `RepoTags` and `repositories`.
fn repo_tags(tags: &[Reference]) -> Vec<String> {
    tags.iter().map(Reference::familiar_tagged).collect()
}

/// Writes `image` as a docker-archive at `path`, tagged with every reference in `tags`.
///
/// The archive is written under a temporary name next to `path` and renamed when complete, so a
/// failed or cancelled write leaves no file behind.
pub fn write(
    image: &Image,
    tags: &[Reference],
    path: &Path,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<WrittenImage> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(Error::Output {
            path: path.to_path_buf(),
            reason: "it is a directory (use `oci:DIR` to write an OCI layout)".into(),
        });
    }
    let temp = tempfile::Builder::new()
        .prefix(".conda-docker-")
        .suffix(".tmp")
        .tempfile_in(&parent)
        .map_err(|e| Error::Output {
            path: path.to_path_buf(),
            reason: format!(
                "cannot create a file in `{}`: {}",
                parent.display(),
                e.kind()
            ),
        })?;
    let io_err = |e: io::Error| Error::io("writing", path)(e);
    let mut tar = StreamingTar {
        out: BufWriter::with_capacity(1 << 20, temp.as_file().try_clone().map_err(io_err)?),
        mtime: 0,
    };
    tar.append_dir("blobs/").map_err(io_err)?;
    tar.append_dir("blobs/sha256/").map_err(io_err)?;

    let mut written_layers = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let total = image.layers().len();
    for (i, layer) in image.layers().iter().enumerate() {
        reporter.layer_started(i, total, layer);
        let written = tar.append_streamed(
            |out| {
                let w = layer.write_to(out, Encoding::Uncompressed, cancel)?;
                let name = seen.insert(w.digest.clone()).then(|| blob_name(&w.digest));
                Ok((name, w))
            },
            io_err,
        )?;
        reporter.layer_finished(i, layer, &written);
        written_layers.push(written);
    }
    let diff_ids: Vec<Digest> = written_layers.iter().map(|l| l.diff_id.clone()).collect();
    let config = image.config_bytes(diff_ids.clone());
    let config_digest = Digest::of(&config);
    tar.append_bytes(&blob_name(&config_digest), &config)
        .map_err(io_err)?;

    let oci_manifest =
        oci_layout::manifest_bytes(image, &config_digest, config.len() as u64, &written_layers);
    let manifest_digest = Digest::of(&oci_manifest);
    if seen.insert(manifest_digest.clone()) {
        tar.append_bytes(&blob_name(&manifest_digest), &oci_manifest)
            .map_err(io_err)?;
    }
    let tags_familiar = repo_tags(tags);
    let index =
        oci_layout::index_bytes(&[(manifest_digest.clone(), oci_manifest.len() as u64, tags)]);
    tar.append_bytes("index.json", &index).map_err(io_err)?;
    let manifest = vec![ManifestEntry {
        config: blob_name(&config_digest),
        repo_tags: (!tags_familiar.is_empty()).then(|| tags_familiar.clone()),
        layers: written_layers
            .iter()
            .map(|l| blob_name(&l.digest))
            .collect(),
    }];
    let manifest_json = serde_json::to_vec(&manifest).map_err(|e| io_err(e.into()))?;
    tar.append_bytes("manifest.json", &manifest_json)
        .map_err(io_err)?;
    tar.append_bytes("oci-layout", oci_layout::OCI_LAYOUT_FILE)
        .map_err(io_err)?;
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(top) = diff_ids.last() {
        for t in tags {
            repositories
                .entry(t.familiar_name())
                .or_default()
                .insert(t.tag_or_latest().to_string(), top.hex().to_string());
        }
    }
    let repositories = serde_json::to_vec(&repositories).map_err(|e| io_err(e.into()))?;
    tar.append_bytes("repositories", &repositories)
        .map_err(io_err)?;
    tar.out.write_all(&[0u8; 1024]).map_err(io_err)?;
    let file = tar.out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    cancel.check().map_err(io_err)?;
    persist(temp, path)?;
    Ok(WrittenImage {
        config_digest,
        manifest_digest: Some(manifest_digest),
        layers: written_layers,
        push: None,
    })
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}
