//! The conda packages an image holds, read from the `conda-meta/*.json` records in its layers
//! as a container sees them: a record in a higher layer replaces a lower one at the same path,
//! and a whiteout, an opaque directory or a file where a directory was deletes what lies below.
//!
//! [`scan`] reads one layer tar; [`Environment`] stacks the layers' results. Every record is read
//! with a cap ([`MAX_RECORD_SIZE`]) and an image may hold at most [`MAX_RECORDS`] of them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use crate::image::files::clean;

/// The most bytes of one `conda-meta/*.json` record read (it lists every file of its package).
pub const MAX_RECORD_SIZE: u64 = 32 << 20;

/// The most records one image (or one layer) may hold.
pub const MAX_RECORDS: usize = 100_000;

/// One conda package an image holds, as its `conda-meta` record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The environment it is installed in: the directory holding its record (`/opt/conda`).
    pub prefix: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its build string.
    pub build: String,
    /// The channel its record names, if any.
    pub channel: Option<String>,
    /// The archive's sha256 (hex), if the record has one.
    pub sha256: Option<String>,
    /// The whole record, when it reads as one (URL, file name, dependencies, hashes).
    #[serde(skip)]
    pub record: Option<Box<RepoDataRecord>>,
}

impl Package {
    /// `name-version-build`.
    pub fn dist(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.build)
    }
}

/// A PyPI distribution an image holds, installed by a tool other than conda (its
/// `.dist-info/INSTALLER` says which: `conda-docker`, `pip`, `uv`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PypiPackage {
    /// The `site-packages` directory holding it (`/opt/conda/lib/python3.11/site-packages`).
    pub site_packages: String,
    /// Its name, normalised.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What installed it.
    pub installer: String,
}

impl PypiPackage {
    /// `name-version`.
    pub fn dist(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// The most bytes of an `INSTALLER` file read.
const MAX_INSTALLER_SIZE: u64 = 4 << 10;

/// What one layer does to the records: the records it holds and the lower ones it deletes.
#[derive(Clone, Debug, Default)]
pub struct LayerRecords {
    /// The records in the layer, by their path in the image (`opt/conda/conda-meta/x.json`).
    pub records: Vec<(String, Package)>,
    /// The PyPI distributions in the layer, by their `INSTALLER` file's path.
    pub pypi: Vec<(String, PypiPackage)>,
    /// Paths of lower layers' records the layer deletes or hides.
    pub deleted: Vec<String>,
    /// The number of entries in the layer.
    pub entries: usize,
}

/// The fields of a record every conda writes.
#[derive(Deserialize)]
struct Summary {
    name: String,
    version: String,
    build: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

fn too_many() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("more than {MAX_RECORDS} conda-meta records"),
    )
}

/// Reads one layer tar: its records, and which records of `below` (the layers under it) it
/// deletes. Reads the tar to its end, so the writer side never blocks.
pub fn scan(reader: &mut dyn Read, below: &Environment) -> io::Result<LayerRecords> {
    let mut archive = tar::Archive::new(reader);
    let mut out = LayerRecords::default();
    let mut deleted = BTreeSet::new();
    // Every lower record at `path` or below it.
    let delete_from = |path: &str, deleted: &mut BTreeSet<String>, and_self: bool| {
        if and_self && below.holds(path) {
            deleted.insert(path.to_string());
        }
        let dir = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        deleted.extend(below.paths_under(&dir).cloned());
    };
    for entry in archive.entries()? {
        let mut entry = entry?;
        out.entries += 1;
        let path = clean(&entry.path()?);
        let Some(text) = path.to_str() else { continue };
        let text = text.to_string();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // `text` is UTF-8, so its parent is too.
        let parent = path.parent().unwrap_or(Path::new(""));
        let parent_text = parent.to_str().unwrap_or_default();
        if name == ".wh..wh..opq" {
            delete_from(parent_text, &mut deleted, false);
            continue;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            if !(target.is_empty() || target.starts_with(".wh.")) {
                let target = parent.join(target);
                delete_from(&target.display().to_string(), &mut deleted, true);
            }
            // else aufs' own files (`.wh..wh.plnk`), not whiteouts
            continue;
        }
        let kind = entry.header().entry_type();
        if !kind.is_dir() {
            // A file, link or symlink where a directory was hides what was below it.
            delete_from(&text, &mut deleted, false);
        }
        if name == "INSTALLER" && kind.is_file() {
            let metadata = format!("{}/METADATA", parent_text);
            if let Some((dist, version)) = crate::pypi::provides::metadata_path_dist(&metadata) {
                let size = entry.size();
                let bytes = crate::capped::read_capped(&mut entry, Some(size), MAX_INSTALLER_SIZE)
                    .map_err(|e| io::Error::new(e.kind(), format!("`/{text}` {e}")))?;
                let installer = String::from_utf8_lossy(&bytes).trim().to_string();
                if below.holds(&text) {
                    deleted.insert(text.clone());
                }
                if installer != "conda" {
                    if out.pypi.len() >= MAX_RECORDS {
                        return Err(too_many());
                    }
                    let site = parent.parent().unwrap_or(Path::new(""));
                    out.pypi.push((
                        text,
                        PypiPackage {
                            site_packages: format!("/{}", site.display()),
                            name: dist,
                            version,
                            installer,
                        },
                    ));
                }
                continue;
            }
        }
        let is_record = parent.file_name().is_some_and(|n| n == "conda-meta")
            && path.extension().is_some_and(|e| e == "json")
            && kind.is_file();
        if !is_record {
            if below.holds(&text) {
                deleted.insert(text);
            }
            continue;
        }
        let size = entry.size();
        let bytes = crate::capped::read_capped(&mut entry, Some(size), MAX_RECORD_SIZE)
            .map_err(|e| io::Error::new(e.kind(), format!("`/{}` {e}", path.display())))?;
        let Ok(summary) = serde_json::from_slice::<Summary>(&bytes) else {
            // Some other JSON file: it replaces whatever record was there.
            if below.holds(&text) {
                deleted.insert(text);
            }
            continue;
        };
        if out.records.len() >= MAX_RECORDS {
            return Err(too_many());
        }
        let record = serde_json::from_slice::<RepoDataRecord>(&bytes)
            .ok()
            .map(Box::new);
        let prefix = parent.parent().unwrap_or(Path::new(""));
        out.records.push((
            text,
            Package {
                prefix: format!("/{}", prefix.display()),
                name: summary.name,
                version: summary.version,
                build: summary.build,
                channel: summary.channel,
                sha256: summary.sha256.map(|h| h.to_lowercase()),
                record,
            },
        ));
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    out.deleted = deleted.into_iter().collect();
    Ok(out)
}

/// The records of a stack of layers, as the top of the stack sees them.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    records: BTreeMap<String, Package>,
    pypi: BTreeMap<String, PypiPackage>,
}

impl Environment {
    /// True when a record is at `path`.
    fn holds(&self, path: &str) -> bool {
        self.records.contains_key(path) || self.pypi.contains_key(path)
    }

    /// The record paths that start with `dir` (which ends in `/`, or is empty for all).
    fn paths_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        let range = (std::ops::Bound::Included(dir), std::ops::Bound::Unbounded);
        let records = self.records.range::<str, _>(range).map(|(p, _)| p);
        let pypi = self.pypi.range::<str, _>(range).map(|(p, _)| p);
        records
            .take_while(move |p| p.starts_with(dir))
            .chain(pypi.take_while(move |p| p.starts_with(dir)))
    }

    /// Puts `layer` on top: its deletions, then its records.
    pub fn apply(&mut self, layer: LayerRecords) -> io::Result<()> {
        for path in &layer.deleted {
            self.records.remove(path);
            self.pypi.remove(path);
        }
        self.records.extend(layer.records);
        self.pypi.extend(layer.pypi);
        if self.records.len() > MAX_RECORDS || self.pypi.len() > MAX_RECORDS {
            return Err(too_many());
        }
        Ok(())
    }

    /// The PyPI distributions, by `site-packages` then name.
    pub fn pypi(&self) -> Vec<PypiPackage> {
        let mut all: Vec<PypiPackage> = self.pypi.values().cloned().collect();
        all.sort_by(|a, b| (&a.site_packages, &a.name).cmp(&(&b.site_packages, &b.name)));
        all
    }

    /// The packages, by prefix then name (then version and build).
    pub fn packages(&self) -> Vec<Package> {
        let mut packages: Vec<Package> = self.records.values().cloned().collect();
        packages.sort_by(|a, b| {
            (&a.prefix, &a.name, &a.version, &a.build)
                .cmp(&(&b.prefix, &b.name, &b.version, &b.build))
        });
        packages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn record(name: &str, version: &str) -> Vec<u8> {
        format!(r#"{{"name":"{name}","version":"{version}","build":"h0_0","files":[]}}"#)
            .into_bytes()
    }

    fn stack(layers: &[Vec<u8>]) -> Vec<String> {
        let mut env = Environment::default();
        for l in layers {
            let scanned = scan(&mut l.as_slice(), &env).unwrap();
            env.apply(scanned).unwrap();
        }
        env.packages()
            .iter()
            .map(|p| format!("{}:{}", p.prefix, p.dist()))
            .collect()
    }

    #[test]
    fn higher_layers_replace_and_delete_records() {
        let a = record("a", "1");
        let b = record("b", "1");
        let b2 = record("b", "2");
        let c = record("c", "1");
        let base = layer(&[
            ("opt/conda/conda-meta/a-1-h0_0.json", &a),
            ("./opt/conda/conda-meta/b-1-h0_0.json", &b),
            ("opt/other/conda-meta/c-1-h0_0.json", &c),
            ("opt/conda/conda-meta/history", b""),
        ]);
        assert_eq!(
            stack(std::slice::from_ref(&base)),
            [
                "/opt/conda:a-1-h0_0",
                "/opt/conda:b-1-h0_0",
                "/opt/other:c-1-h0_0"
            ]
        );
        let update = layer(&[
            ("opt/conda/conda-meta/.wh.b-1-h0_0.json", b""),
            ("opt/conda/conda-meta/b-2-h0_0.json", &b2),
            ("opt/.wh.other", b""),
        ]);
        assert_eq!(
            stack(&[base.clone(), update]),
            ["/opt/conda:a-1-h0_0", "/opt/conda:b-2-h0_0"]
        );
        let opaque = layer(&[("opt/conda/conda-meta/.wh..wh..opq", b"")]);
        assert_eq!(stack(&[base.clone(), opaque]), ["/opt/other:c-1-h0_0"]);
        let file_over_dir = layer(&[("opt/conda", b"not a directory")]);
        assert_eq!(stack(&[base, file_over_dir]), ["/opt/other:c-1-h0_0"]);
    }
}
