//! Which PyPI distributions the conda packages already provide, so that pip requirements they
//! satisfy are not installed again (as pixi does).
//!
//! Two sources, both read from what the build already has: a record's `purls`
//! (`pkg:pypi/numpy`), and the `site-packages/*.dist-info/METADATA` (or `*.egg-info`) paths in
//! a package's file list, whose directory name gives the distribution and its version.

use std::collections::BTreeMap;

use rattler_conda_types::RepoDataRecord;

use super::normalize_name;
use crate::conda::contents::PackageContents;

/// How a conda package says it provides a distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Its record's `pkg:pypi/...` purl.
    Purl,
    /// This `.dist-info` or `.egg-info` path among its files.
    Metadata(String),
}

/// A PyPI distribution a conda package provides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provided {
    /// The distribution's name, normalised (PEP 503).
    pub name: String,
    /// Its version: the `.dist-info`'s, else the purl's, else the conda package's.
    pub version: String,
    /// The conda package (`name-version-build`).
    pub package: String,
    /// What says so.
    pub evidence: Evidence,
}

/// `(name, version)` of a metadata path `.../site-packages/<name>-<version>.dist-info/METADATA`
/// (or `.egg-info/PKG-INFO`, or an `.egg-info` file), or `None` for any other path.
pub fn metadata_path_dist(path: &str) -> Option<(String, String)> {
    let (dir, file) = path.rsplit_once('/')?;
    let (parent, name) = match dir.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", dir),
    };
    let in_site = |p: &str| p == "site-packages" || p.ends_with("/site-packages");
    let stem = if in_site(parent) && file == "METADATA" {
        name.strip_suffix(".dist-info")?
    } else if in_site(parent) && file == "PKG-INFO" {
        name.strip_suffix(".egg-info")?
    } else if in_site(dir) {
        file.strip_suffix(".egg-info")?
    } else {
        return None;
    };
    // `name-version`, or `name-version-pyX.Y` for eggs; names hold no `-` (they are escaped).
    let mut parts = stem.split('-');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let version = parts.next().filter(|v| !v.is_empty())?;
    Some((normalize_name(name), version.to_string()))
}

/// The distributions `records`' packages provide (`contents[i]` is `records[i]`'s), by
/// normalised name; where two packages provide one, the later in the records' order wins, as
/// its files would.
pub fn provided(
    records: &[RepoDataRecord],
    contents: &[&PackageContents],
) -> BTreeMap<String, Provided> {
    let mut out = BTreeMap::new();
    for (record, content) in records.iter().zip(contents) {
        let package = record.identifier.to_string();
        let mut found: BTreeMap<String, Provided> = BTreeMap::new();
        for purl in record.package_record.purls.iter().flatten() {
            if purl.package_type().as_str() != "pypi" {
                continue;
            }
            let name = normalize_name(purl.name());
            let version = purl
                .version()
                .map(str::to_string)
                .unwrap_or_else(|| record.package_record.version.to_string());
            found.insert(
                name.clone(),
                Provided {
                    name,
                    version,
                    package: package.clone(),
                    evidence: Evidence::Purl,
                },
            );
        }
        // The installed metadata is what pip and importlib.metadata see: it wins over a purl.
        for p in installed(record, content) {
            found.insert(p.name.clone(), p);
        }
        out.extend(found);
    }
    out
}

/// The distributions `record`'s package installs, from its own files alone: one per
/// `.dist-info`/`.egg-info` metadata path its file list holds ([`metadata_path_dist`]), in
/// name order, never guessed from the conda name.
pub fn installed(record: &RepoDataRecord, content: &PackageContents) -> Vec<Provided> {
    let mut found: BTreeMap<String, Provided> = BTreeMap::new();
    for p in &content.paths {
        if let Some((name, version)) = metadata_path_dist(&p.path) {
            found.insert(
                name.clone(),
                Provided {
                    name,
                    version,
                    package: record.identifier.to_string(),
                    evidence: Evidence::Metadata(p.path.clone()),
                },
            );
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_give_name_and_version() {
        assert_eq!(
            metadata_path_dist("lib/python3.11/site-packages/MarkupSafe-3.0.2.dist-info/METADATA"),
            Some(("markupsafe".into(), "3.0.2".into()))
        );
        assert_eq!(
            metadata_path_dist("site-packages/typing_extensions-4.12.2.dist-info/METADATA"),
            Some(("typing-extensions".into(), "4.12.2".into()))
        );
        assert_eq!(
            metadata_path_dist("lib/python3.11/site-packages/six-1.16.0-py3.11.egg-info/PKG-INFO"),
            Some(("six".into(), "1.16.0".into()))
        );
        assert_eq!(
            metadata_path_dist("lib/python3.11/site-packages/foo-1.0-py3.11.egg-info"),
            Some(("foo".into(), "1.0".into()))
        );
        for other in [
            "lib/python3.11/site-packages/foo-1.0.dist-info/RECORD",
            "lib/python3.11/site-packages/foo/bar-1.0.dist-info/METADATA",
            "share/foo-1.0.dist-info/METADATA",
            "lib/python3.11/site-packages/foo.py",
            "METADATA",
        ] {
            assert_eq!(metadata_path_dist(other), None, "{other}");
        }
    }
}
