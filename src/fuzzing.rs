//! Entry points for the fuzz targets in `fuzz/` (not an API): each takes arbitrary bytes, must
//! never panic on them, and panics only when a check it makes of the result fails.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;

use crate::image::checked_tar::CheckedTar;
use crate::image::manifest::{Index, Manifest, describe_all, for_platform};
use crate::image::{Cancel, ConfigFile, Encoding, Image, Platform, Reference};

/// A reader giving at most `chunk` bytes per read, so header boundaries fall anywhere.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn escapes(path: &[u8]) -> bool {
    path.first() == Some(&b'/') || path.split(|&b| b == b'/').any(|c| c == b"..")
}

fn normalize(path: &[u8]) -> Vec<u8> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// A layer tar: [`CheckedTar`] must give the same verdict however the bytes are split, and
/// when it accepts them, every entry the `tar` crate reads has a safe path and every hard link
/// an earlier target.
pub fn layer_tar(data: &[u8]) {
    let whole = io::copy(&mut CheckedTar::new(data), &mut io::sink()).is_ok();
    let chunk = data.first().map_or(1, |&b| usize::from(b % 61) + 1);
    let chunked = io::copy(
        &mut CheckedTar::new(Chunked { data, chunk }),
        &mut io::sink(),
    )
    .is_ok();
    assert_eq!(
        whole, chunked,
        "the verdict depends on read sizes ({chunk})"
    );
    if !whole {
        return;
    }
    let mut archive = tar::Archive::new(data);
    let Ok(entries) = archive.entries() else {
        return;
    };
    let mut seen = HashSet::new();
    for entry in entries {
        let Ok(entry) = entry else { return };
        let path = entry.path_bytes().into_owned();
        assert!(
            !escapes(&path),
            "accepted {:?}",
            String::from_utf8_lossy(&path)
        );
        if entry.header().entry_type() == tar::EntryType::Link {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            assert!(!escapes(&target), "accepted a hard link to {target:?}");
            assert!(
                seen.contains(&normalize(&target)),
                "accepted a hard link to nothing"
            );
        }
        seen.insert(normalize(&path));
    }
}

/// A docker-archive `manifest.json`: parsed and an image picked from it.
pub fn docker_manifest(data: &[u8]) {
    crate::transport::docker_archive::fuzz_manifest(data);
}

/// Writes `data` to a temporary file and hands its path to `read`.
fn with_file(data: &[u8], read: impl FnOnce(&Path)) {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if io::Write::write_all(&mut file, data).is_ok() {
        read(file.path());
    }
}

/// Writes every layer of `image` to nowhere, as a build writes a base's layers.
fn write_layers(image: &Image) {
    for layer in image.layers() {
        let _ = layer.write_to(&mut io::sink(), Encoding::Uncompressed, &Cancel::new());
    }
}

/// A whole docker-archive: read, then its layers read through the checks.
pub fn docker_archive(data: &[u8]) {
    with_file(data, |path| {
        if let Ok(image) = crate::transport::docker_archive::read(path, None) {
            write_layers(&image);
        }
    });
}

/// A whole oci-archive (an OCI layout in a tar): index, nested indexes, manifests, configs and
/// layers.
pub fn oci_archive(data: &[u8]) {
    with_file(data, |path| {
        let platform = Platform::linux("amd64", None);
        if let Ok(image) = crate::transport::oci_archive::read(path, None, &platform) {
            write_layers(&image);
        }
    });
}

/// The same bytes as an OCI index, manifest and config.
pub fn oci_json(data: &[u8]) {
    let platform = Platform::linux("amd64", None);
    if let Ok(index) = serde_json::from_slice::<Index>(data) {
        let _ = for_platform(&index.manifests, &platform);
        let _ = describe_all(&index.manifests);
        let again: Index = serde_json::from_slice(&index.to_bytes()).expect("an index we wrote");
        assert_eq!(again.manifests.len(), index.manifests.len());
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let _ = describe_all(&manifest.layers);
    }
    if let Ok(config) = serde_json::from_slice::<ConfigFile>(data) {
        let n = config.rootfs.diff_ids.len();
        let image = Image::from_parts(config, Vec::new());
        assert_eq!(image.is_ok(), n == 0);
        if let Ok(image) = image {
            let bytes = image.config_bytes(Vec::new());
            serde_json::from_slice::<ConfigFile>(&bytes).expect("a config we wrote");
        }
    }
}

/// An image reference: a parsed reference prints as text that parses back to it.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<Reference>() {
        let printed = r.to_string();
        let again: Reference = printed.parse().unwrap_or_else(|e| {
            panic!("`{text}` printed as `{printed}`, which does not parse: {e}")
        });
        assert_eq!(again, r, "`{text}` printed as `{printed}`");
        let _ = (r.familiar_name(), r.familiar_tagged(), r.tag_or_latest());
    }
    let _ = crate::transport::Location::parse_source(text);
    let _ = crate::transport::Location::parse_destination(text);
}

/// An `environment.yml`, with its `conda-docker:` section.
pub fn env_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As `-f` reads one: too deep a file never reaches the parser.
    if crate::capped::check_depth(data, crate::capped::DEPTH_CAP).is_err() {
        return;
    }
    if let Ok(env) = crate::conda::env_file::parse(Path::new("environment.yml"), text)
        && let Some(section) = env.image
    {
        let _ = serde_yaml::from_value::<crate::settings::ImageSettings>(section);
    }
}

/// A lockfile (or environment file) read as `-f` reads it: told apart by content, then read.
pub fn lockfile(data: &[u8]) {
    if std::str::from_utf8(data).is_err() {
        return;
    }
    with_file(data, |path| {
        if let Ok(input) = crate::input::Input::read_file(
            path,
            crate::conda::Subdir::Linux64,
            "default",
            &[],
            &crate::env::Env::default(),
        ) && let crate::input::Packages::Locked(locked) = &input.packages
        {
            let _ = crate::conda::lock::records_offline(locked);
        }
    });
}
