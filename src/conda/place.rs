//! Where each package's files go in the prefix: `noarch: python` placement, entry points,
//! trimming, clobbers (two packages shipping one path) and each package's `conda-meta` record.
//!
//! Computed from records and [`PackageContents`] alone, so it needs no package file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rattler::install::PythonInfo;
use rattler_conda_types::prefix_record::{PathType, PathsEntry};
use rattler_conda_types::{PrefixRecord, RepoDataRecord, Subdir};

use super::contents::{PackageContents, PathKind, check_entry_point};
use super::package_files::check_package_path;
use super::{Error, Result};

/// Groups of files left out of the image (the seed dropped static libraries and source maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Trim {
    /// `*.a` static libraries.
    pub static_libs: bool,
    /// `*.js.map` source maps.
    pub js_maps: bool,
    /// `share/{man,info,doc,gtk-doc}`.
    pub docs: bool,
    /// `include/`.
    pub headers: bool,
}

impl Default for Trim {
    /// Static libraries and source maps, as the seed trimmed.
    fn default() -> Self {
        Self {
            static_libs: true,
            js_maps: true,
            docs: false,
            headers: false,
        }
    }
}

impl Trim {
    /// Keeps everything.
    pub const NONE: Self = Self {
        static_libs: false,
        js_maps: false,
        docs: false,
        headers: false,
    };

    /// The default trim with the groups named `groups` added, or no trim at all with `none`.
    pub fn from_groups(groups: &[String], none: bool) -> std::result::Result<Self, String> {
        if none {
            return Ok(Self::NONE);
        }
        groups
            .iter()
            .try_fold(Self::default(), |t, g| t.with_group(g.trim()))
    }

    /// Adds a group by its name (`static-libs`, `js-maps`, `docs`, `headers`).
    pub fn with_group(mut self, name: &str) -> std::result::Result<Self, String> {
        match name {
            "static-libs" => self.static_libs = true,
            "js-maps" => self.js_maps = true,
            "docs" => self.docs = true,
            "headers" => self.headers = true,
            other => {
                return Err(format!(
                    "unknown trim group `{other}`: use static-libs, js-maps, docs or headers"
                ));
            }
        }
        Ok(self)
    }

    /// The group names that are on, for keys and messages.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.static_libs, "static-libs"),
            (self.js_maps, "js-maps"),
            (self.docs, "docs"),
            (self.headers, "headers"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// True when `path` (relative to the prefix) is left out.
    pub fn drops(&self, path: &str) -> bool {
        (self.static_libs && path.ends_with(".a"))
            || (self.js_maps && path.ends_with(".js.map"))
            || (self.docs
                && ["share/man/", "share/info/", "share/doc/", "share/gtk-doc/"]
                    .iter()
                    .any(|d| path.starts_with(d)))
            || (self.headers && path.starts_with("include/"))
    }
}

/// Where one file of the environment comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The package's path with this index in [`PackageContents::paths`].
    Package(usize),
    /// A generated entry-point script with these bytes.
    Script(String),
}

/// One file of the environment, at its place in the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedFile {
    /// Where it goes, relative to the prefix.
    pub path: String,
    /// Where its bytes come from.
    pub source: Source,
}

/// One package's part of the environment.
#[derive(Clone, Debug)]
pub struct PlacedPackage {
    /// The files the image gets from it (clobbered and trimmed ones left out).
    pub files: Vec<PlacedFile>,
    /// `conda-meta/<name>-<version>-<build>.json`, relative to the prefix.
    pub record_path: String,
    /// That record's bytes: the files above, and no build-machine path.
    pub record_json: Vec<u8>,
}

/// Two packages shipped the same path; the later one in dependency order won.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clobber {
    /// The path, relative to the prefix.
    pub path: String,
    /// The package whose file the image does not get.
    pub loser: String,
    /// The package whose file it gets.
    pub winner: String,
}

/// The whole environment's files, package by package.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Per record, in the records' order.
    pub packages: Vec<PlacedPackage>,
    /// Paths two packages shipped.
    pub clobbers: Vec<Clobber>,
    /// Bytes (as shipped) left out by trimming.
    pub trimmed_bytes: u64,
    /// Activation variables the packages declare, as `conda activate` sets them.
    pub activation: BTreeMap<String, String>,
}

/// Keys of a `conda-meta` record that hold build-machine paths or the user's request.
const HOST_KEYS: &[&str] = &[
    "extracted_package_dir",
    "package_tarball_full_path",
    "link",
    "requested_spec",
    "requested_specs",
];

/// The environment's python, for placing `noarch: python` packages.
pub fn python_info(records: &[RepoDataRecord], subdir: Subdir) -> Result<Option<PythonInfo>> {
    let Some(python) = records
        .iter()
        .find(|r| r.package_record.name.as_normalized() == "python")
    else {
        return Ok(None);
    };
    let info = PythonInfo::from_python_record(&python.package_record, subdir).map_err(|e| {
        Error::UnsafePackage {
            package: python.identifier.to_string(),
            path: "python".into(),
            reason: e.to_string(),
        }
    })?;
    let site = info.site_packages_path.to_string_lossy().into_owned();
    if let Some(reason) = check_package_path(&site) {
        return Err(Error::UnsafePackage {
            package: python.identifier.to_string(),
            path: site,
            reason: format!("python_site_packages_path: {reason}"),
        });
    }
    Ok(Some(info))
}

/// Places every package of the environment (records in dependency order).
pub fn place(
    records: &[RepoDataRecord],
    contents: &[&PackageContents],
    python: Option<&PythonInfo>,
    target_prefix: &Path,
    trim: Trim,
) -> Result<Placement> {
    let prefix = target_prefix.to_string_lossy();
    let mut trimmed_bytes = 0;
    let mut per_package: Vec<Vec<PlacedFile>> = Vec::with_capacity(records.len());
    for (record, content) in records.iter().zip(contents) {
        let package = record.identifier.to_string();
        let python = match (content.noarch_python, python) {
            (false, _) => None,
            (true, Some(p)) => Some(p),
            (true, None) => {
                return Err(Error::UnsafePackage {
                    package,
                    path: "info/index.json".into(),
                    reason: "it is a `noarch: python` package, but the environment has no python"
                        .into(),
                });
            }
        };
        let mut files = Vec::with_capacity(content.paths.len());
        for (i, p) in content.paths.iter().enumerate() {
            let path = match python {
                Some(py) => py
                    .get_python_noarch_target_path(Path::new(&p.path))
                    .to_string_lossy()
                    .into_owned(),
                None => p.path.clone(),
            };
            if trim.drops(&path) {
                trimmed_bytes += p.size;
                continue;
            }
            files.push(PlacedFile {
                path,
                source: Source::Package(i),
            });
        }
        if let Some(py) = python {
            for point in &content.entry_points {
                let parsed = check_entry_point(point).map_err(|reason| Error::UnsafePackage {
                    package: package.clone(),
                    path: "info/link.json".into(),
                    reason,
                })?;
                let script =
                    rattler::install::python_entry_point_template(&prefix, false, &parsed, py);
                files.push(PlacedFile {
                    path: py
                        .bin_dir
                        .join(&parsed.command)
                        .to_string_lossy()
                        .into_owned(),
                    source: Source::Script(script),
                });
            }
        }
        per_package.push(files);
    }

    let clobbers = resolve_clobbers(records, contents, &mut per_package);
    check_ancestors(records, contents, &per_package)?;

    let mut activation = BTreeMap::new();
    let mut env_files: BTreeMap<String, &BTreeMap<String, String>> = BTreeMap::new();
    let mut packages = Vec::with_capacity(records.len());
    for ((record, content), files) in records.iter().zip(contents).zip(per_package) {
        for f in &files {
            if let Source::Package(_) = f.source
                && let Some(name) = f.path.strip_prefix("etc/conda/env_vars.d/")
                && let Some(vars) = content.env_vars.get(name)
            {
                env_files.insert(name.to_string(), vars);
            }
        }
        let (record_path, record_json) = record_file(record, content, &files)?;
        packages.push(PlacedPackage {
            files,
            record_path,
            record_json,
        });
    }
    for vars in env_files.values() {
        activation.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Ok(Placement {
        packages,
        clobbers,
        trimmed_bytes,
        activation,
    })
}

/// Leaves each clobbered path to the package latest in dependency order (as conda does).
fn resolve_clobbers(
    records: &[RepoDataRecord],
    contents: &[&PackageContents],
    per_package: &mut [Vec<PlacedFile>],
) -> Vec<Clobber> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut lost: Vec<Vec<String>> = vec![Vec::new(); per_package.len()];
    let mut clobbers = Vec::new();
    for (pkg, files) in per_package.iter().enumerate() {
        for f in files {
            let is_dir = matches!(f.source, Source::Package(i) if contents[pkg].paths[i].kind == PathKind::Dir);
            if is_dir {
                continue;
            }
            if let Some(previous) = owner.insert(f.path.clone(), pkg)
                && previous != pkg
            {
                lost[previous].push(f.path.clone());
                clobbers.push(Clobber {
                    path: f.path.clone(),
                    loser: records[previous].identifier.to_string(),
                    winner: records[pkg].identifier.to_string(),
                });
            }
        }
    }
    for (files, lost) in per_package.iter_mut().zip(lost) {
        if !lost.is_empty() {
            let lost: std::collections::HashSet<String> = lost.into_iter().collect();
            files.retain(|f| !lost.contains(&f.path));
        }
    }
    clobbers
}

/// Refuses a path below another package's symlink or file: writing it would go through the
/// symlink (as an installer would), or replace a file with a directory.
fn check_ancestors(
    records: &[RepoDataRecord],
    contents: &[&PackageContents],
    per_package: &[Vec<PlacedFile>],
) -> Result<()> {
    let mut non_dirs: HashMap<&str, (usize, &'static str)> = HashMap::new();
    for (pkg, files) in per_package.iter().enumerate() {
        for f in files {
            let kind = match f.source {
                Source::Package(i) => match contents[pkg].paths[i].kind {
                    PathKind::Symlink => "a symlink",
                    PathKind::File => "a file",
                    PathKind::Dir => continue,
                },
                Source::Script(_) => "a file",
            };
            non_dirs.insert(&f.path, (pkg, kind));
        }
    }
    for (pkg, files) in per_package.iter().enumerate() {
        for f in files {
            let mut ancestor = f.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                if let Some((owner, kind)) = non_dirs.get(parent) {
                    return Err(Error::PathConflict {
                        package: records[pkg].identifier.to_string(),
                        path: f.path.clone(),
                        other: records[*owner].identifier.to_string(),
                        ancestor: parent.to_string(),
                        kind,
                    });
                }
                ancestor = parent;
            }
        }
    }
    Ok(())
}

/// The `conda-meta` record of one package, listing the files the image has.
fn record_file(
    record: &RepoDataRecord,
    content: &PackageContents,
    files: &[PlacedFile],
) -> Result<(String, Vec<u8>)> {
    let paths = files
        .iter()
        .map(|f| {
            let (path_type, package_path) = match &f.source {
                Source::Package(i) => {
                    let p = &content.paths[*i];
                    let t = match p.kind {
                        PathKind::File => PathType::HardLink,
                        PathKind::Symlink => PathType::SoftLink,
                        PathKind::Dir => PathType::Directory,
                    };
                    (t, Some(p))
                }
                Source::Script(_) => (PathType::UnixPythonEntryPoint, None),
            };
            PathsEntry {
                relative_path: f.path.clone().into(),
                original_path: None,
                path_type,
                no_link: false,
                sha256: package_path
                    .and_then(|p| p.sha256.as_deref())
                    .and_then(rattler_digest::parse_digest_from_hex::<rattler_digest::Sha256>),
                sha256_in_prefix: None,
                size_in_bytes: package_path.map(|p| p.size),
                prefix_placeholder: None,
                file_mode: None,
            }
        })
        .collect();
    let prefix_record = PrefixRecord::from_repodata_record(record.clone(), paths);
    let path = format!("conda-meta/{}", prefix_record.file_name());
    let mut value =
        serde_json::to_value(&prefix_record).map_err(|e| Error::io("writing", &path)(e.into()))?;
    if let Some(obj) = value.as_object_mut() {
        for key in HOST_KEYS {
            obj.remove(*key);
        }
    }
    let mut bytes =
        serde_json::to_vec_pretty(&value).map_err(|e| Error::io("writing", &path)(e.into()))?;
    bytes.push(b'\n');
    Ok((path, bytes))
}
