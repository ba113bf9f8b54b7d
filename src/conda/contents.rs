//! What one package holds: its checked file list, entry points and activation variables.
//!
//! [`PackageContents::read`] reads `info/index.json`, `info/paths.json` and `info/link.json` of an
//! extracted package through the checked reader ([`super::package_files`]) and checks every path
//! against what is really there. The result is small and is kept by the package's sha256
//! ([`ContentsCache`]), so a warm build plans its layers without reading any package file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::RepoDataRecord;
use rattler_conda_types::package::IndexJson;
use serde::{Deserialize, Serialize};

use super::archive::{PackageArchive, stream_cap};
use super::package_files::{Kind, PackageDir, PackageFiles, check_package_path};
use super::{Error, Result};
use crate::spool::Keep;

/// The largest metadata file (`index.json`, `link.json`, an activation file) read from a package.
const SMALL_FILE_CAP: u64 = 1 << 20;
/// The largest `paths.json` read from a package.
const PATHS_JSON_CAP: u64 = 64 << 20;

/// What a path of a package is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// A regular file.
    File,
    /// A symbolic link, kept as a link.
    Symlink,
    /// An (empty) directory.
    Dir,
}

/// A prefix placeholder in a file, to be replaced by the image's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placeholder {
    /// The build prefix recorded in the file.
    pub prefix: String,
    /// True for binary mode (NUL-padded C strings), false for text.
    pub binary: bool,
}

/// One path of a package, checked against the extracted directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagePath {
    /// The path in the package, relative to the prefix (checked).
    pub path: String,
    /// What it is.
    pub kind: PathKind,
    /// Permission bits of the file in the package.
    pub mode: u32,
    /// Size in bytes (of the file as shipped).
    pub size: u64,
    /// The sha256 `paths.json` records, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The placeholder to replace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<PathBuf>,
    /// The inode shared with other paths of the package (hard links), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

/// What a package holds, as the layer planner and composer need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageContents {
    /// The name `info/index.json` gives.
    pub name: String,
    /// The package's own `info/index.json`: what it says of itself, the same wherever it was
    /// fetched from (the image's records are made from it, see [`super::record`]).
    pub index: IndexJson,
    /// True for a `noarch: python` package (placed for the environment's python).
    pub noarch_python: bool,
    /// `noarch: python` entry points (`tqdm = tqdm.cli:main`).
    pub entry_points: Vec<String>,
    /// Every path `info/paths.json` lists, in its order.
    pub paths: Vec<PackagePath>,
    /// Activation variables by file name (`etc/conda/env_vars.d/NAME.json`).
    pub env_vars: BTreeMap<String, BTreeMap<String, String>>,
}

/// `info/paths.json` as the package wrote it (paths kept raw, to be checked).
#[derive(Deserialize)]
struct RawPaths {
    paths: Vec<RawPath>,
}

#[derive(Deserialize)]
struct RawPath {
    #[serde(rename = "_path")]
    path: String,
    path_type: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    prefix_placeholder: Option<String>,
    #[serde(default)]
    file_mode: Option<String>,
    #[serde(default)]
    size_in_bytes: Option<u64>,
}

/// The directory of activation files, relative to the prefix.
const ENV_VARS_DIR: &str = "etc/conda/env_vars.d/";

fn dist(record: &RepoDataRecord) -> String {
    record.identifier.to_string()
}

/// Whether `rel` is an activation file (`etc/conda/env_vars.d/NAME.json`), which is read.
fn is_env_vars_file(rel: &str) -> bool {
    rel.strip_prefix(ENV_VARS_DIR)
        .is_some_and(|f| f.ends_with(".json") && !f.contains('/'))
}

/// The `info/` files read from a package.
fn is_read_info(rel: &str) -> Keep {
    match rel {
        "info/index.json" | "info/link.json" => Keep::Upto(SMALL_FILE_CAP),
        "info/paths.json" => Keep::Upto(PATHS_JSON_CAP),
        _ => Keep::Nothing,
    }
}

impl PackageContents {
    /// Reads and checks the contents of `record`'s package, extracted at `dir`.
    pub fn read(dir: &Path, record: &RepoDataRecord) -> Result<Self> {
        let dir = PackageDir::open(dir).map_err(Error::io("opening package directory", dir))?;
        Self::read_files(&PackageFiles::Extracted(std::sync::Arc::new(dir)), record)
    }

    /// Reads and checks the contents of `record`'s package from its archive, never extracted:
    /// the archive's entries are indexed (and checked) as it streams, and only its
    /// activation files are kept; a spool it needs goes in `tmp`.
    pub fn read_archive(
        archive: &PackageArchive,
        record: &RepoDataRecord,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Self> {
        Ok(Self::read_archive_keeping(archive, record, None, tmp, cancelled)?.0)
    }

    /// As [`Self::read_archive`]; with `retain` (a budget, taken from when the package's files
    /// fit in it), every file `paths.json` lists is kept too (in a temporary
    /// file past 64 KiB), so that its layer is made from this one pass over the archive.
    pub fn read_archive_keeping(
        archive: &PackageArchive,
        record: &RepoDataRecord,
        retain: Option<&crate::spool::Budget>,
        tmp: &Path,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(Self, Option<PackageFiles>)> {
        let fail = |source| Error::Archive {
            package: dist(record),
            archive: archive.path().to_path_buf(),
            source,
        };
        let info = archive.info(&is_read_info, tmp, cancelled).map_err(fail)?;
        let declared = declared_sizes(&info);
        let sized = declared.values().all(Option::is_some);
        let total = declared
            .values()
            .flatten()
            .fold(0u64, |a, &b| a.saturating_add(b));
        let retained = sized && retain.is_some_and(|budget| budget.take(total));
        let keep = |rel: &str| match (is_env_vars_file(rel), declared.get(rel)) {
            (true, _) => Keep::Upto(SMALL_FILE_CAP),
            (false, Some(Some(size))) if retained => Keep::Upto(*size),
            _ => Keep::Nothing,
        };
        let memory = if retained {
            64 << 10
        } else {
            crate::spool::MEMORY_CAP
        };
        // Without every size declared, the stream is bounded by the archive's own size.
        let cap = match sized {
            true => stream_cap(total, declared.len()),
            false => archive.unsized_cap().map_err(fail)?,
        };
        let payload = archive
            .payload(&keep, (cap, memory), tmp, cancelled)
            .map_err(fail)?;
        let files = PackageFiles::Archive {
            info: Some(std::sync::Arc::new(info)),
            payload: std::sync::Arc::new(payload),
        };
        let contents = Self::read_files(&files, record)?;
        Ok((contents, retained.then_some(files)))
    }

    /// Reads and checks the contents of `record`'s package from `files`.
    pub fn read_files(files: &PackageFiles, record: &RepoDataRecord) -> Result<Self> {
        let package = dist(record);
        let unsafe_path = |path: &str, reason: String| Error::UnsafePackage {
            package: package.clone(),
            path: path.to_string(),
            reason,
        };
        let dir = files;
        let read_json = |rel: &str, cap: u64| -> Result<serde_json::Value> {
            let bytes = dir
                .read_small(rel, cap)
                .map_err(|e| unsafe_path(rel, e.to_string()))?;
            serde_json::from_slice(&bytes).map_err(|e| unsafe_path(rel, format!("not JSON: {e}")))
        };

        let index: IndexJson =
            serde_json::from_value(read_json("info/index.json", SMALL_FILE_CAP)?)
                .map_err(|e| unsafe_path("info/index.json", format!("not an index.json: {e}")))?;
        let id = &record.identifier.identifier;
        let expected = format!("{}-{}-{}", id.name, id.version, id.build_string);
        let found = format!(
            "{}-{}-{}",
            index.name.as_normalized(),
            index.version,
            index.build
        );
        if found != expected.to_lowercase() {
            return Err(Error::NameMismatch {
                package: package.clone(),
                expected,
                found,
            });
        }
        let name = index.name.as_normalized().to_string();
        let noarch_python = index.noarch.is_python();

        let raw: RawPaths =
            serde_json::from_value(read_json("info/paths.json", PATHS_JSON_CAP)?)
                .map_err(|e| unsafe_path("info/paths.json", format!("not a paths.json: {e}")))?;
        let mut paths = Vec::with_capacity(raw.paths.len());
        let mut env_vars = BTreeMap::new();
        for entry in raw.paths {
            let rel = entry.path.as_str();
            if let Some(reason) = check_install_path(rel) {
                return Err(unsafe_path(rel, reason.to_string()));
            }
            let stat = dir.stat(rel).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => unsafe_path(
                    rel,
                    "paths.json lists it but the package does not have it".into(),
                ),
                _ => unsafe_path(rel, e.to_string()),
            })?;
            let kind = match (entry.path_type.as_str(), stat.kind) {
                ("hardlink", Kind::File) => PathKind::File,
                ("softlink", Kind::Symlink) => PathKind::Symlink,
                ("directory", Kind::Dir) => PathKind::Dir,
                (declared, found) => {
                    return Err(unsafe_path(
                        rel,
                        format!("paths.json says `{declared}` but the package holds a {found:?}"),
                    ));
                }
            };
            if let (PathKind::File, Some(declared)) = (kind, entry.size_in_bytes)
                && declared != stat.size
            {
                return Err(unsafe_path(
                    rel,
                    format!(
                        "paths.json says {declared} bytes but the package holds {}",
                        stat.size
                    ),
                ));
            }
            let link_target = match kind {
                PathKind::Symlink => Some(
                    dir.read_link(rel)
                        .map_err(|e| unsafe_path(rel, e.to_string()))?,
                ),
                _ => None,
            };
            let placeholder = match (kind, entry.prefix_placeholder) {
                (PathKind::File, Some(prefix)) if !prefix.is_empty() => Some(Placeholder {
                    prefix,
                    binary: entry.file_mode.as_deref() == Some("binary"),
                }),
                _ => None,
            };
            if kind == PathKind::File && is_env_vars_file(rel) {
                let vars = read_json(rel, SMALL_FILE_CAP)?;
                let file = rel.trim_start_matches(ENV_VARS_DIR);
                env_vars.insert(file.to_string(), string_map(vars));
            }
            paths.push(PackagePath {
                path: entry.path,
                kind,
                mode: normal_mode(kind, stat.mode),
                size: stat.size,
                sha256: entry.sha256,
                placeholder,
                link_target,
                inode: stat.shared_inode,
            });
        }

        number_link_groups(&mut paths);
        let entry_points = if noarch_python {
            match dir.stat("info/link.json") {
                Ok(_) => {
                    let link = read_json("info/link.json", SMALL_FILE_CAP)?;
                    let points: Vec<String> = link
                        .pointer("/noarch/entry_points")
                        .and_then(|e| e.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|e| e.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    for point in &points {
                        check_entry_point(point).map_err(|r| unsafe_path("info/link.json", r))?;
                    }
                    points
                }
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };

        Ok(Self {
            name,
            index,
            noarch_python,
            entry_points,
            paths,
            env_vars,
        })
    }
}

/// The size `info/paths.json` declares for each file (none when it cannot be read: the check
/// of paths.json then names what is wrong).
fn declared_sizes(info: &crate::spool::TarFiles) -> std::collections::HashMap<String, Option<u64>> {
    let Ok(bytes) = info.read_small("info/paths.json", PATHS_JSON_CAP) else {
        return Default::default();
    };
    let Ok(raw) = serde_json::from_slice::<RawPaths>(&bytes) else {
        return Default::default();
    };
    raw.paths
        .into_iter()
        .map(|p| {
            let size = match p.path_type.as_str() {
                "hardlink" => p.size_in_bytes,
                _ => Some(0),
            };
            (p.path, size)
        })
        .collect()
}

/// A path's mode as an image gets it: what a package's files may be does not depend on the
/// umask of whoever extracted it, or on the archive's bits beyond "executable".
fn normal_mode(kind: PathKind, mode: u32) -> u32 {
    match kind {
        PathKind::File if mode & 0o111 != 0 => 0o755,
        PathKind::File => 0o644,
        PathKind::Dir => 0o755,
        PathKind::Symlink => 0o777,
    }
}

/// Numbers each hard-link group by its first path's index in `paths`, so the same package
/// reads the same from its archive and from any extracted copy (whose inode numbers are the
/// machine's).
fn number_link_groups(paths: &mut [PackagePath]) {
    let mut first: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for (i, p) in paths.iter_mut().enumerate() {
        if let Some(inode) = p.inode {
            p.inode = Some(*first.entry(inode).or_insert(i as u64));
        }
    }
}

/// Why `rel` may not be installed from a package, if it may not: an unsafe path, package
/// metadata (`info/`) or the environment's records (`conda-meta/`).
fn check_install_path(rel: &str) -> Option<&'static str> {
    if let Some(reason) = check_package_path(rel) {
        return Some(reason);
    }
    if rel.starts_with("info/") || rel == "info" {
        return Some("`info/` is package metadata, not a file to install");
    }
    if rel.starts_with("conda-meta/") || rel == "conda-meta" {
        return Some("`conda-meta/` holds the environment's records, which no package ships");
    }
    None
}

impl PackageContents {
    /// Checks contents read from elsewhere than the package (a remote cache's record, named
    /// `package` in errors) by the rules [`PackageContents::read`] applies to its paths and
    /// entry points.
    pub fn check(&self, package: &str) -> Result<()> {
        let unsafe_path = |path: &str, reason: String| Error::UnsafePackage {
            package: package.to_string(),
            path: path.to_string(),
            reason,
        };
        for p in &self.paths {
            if let Some(reason) = check_install_path(&p.path) {
                return Err(unsafe_path(&p.path, reason.to_string()));
            }
            if p.placeholder.is_some() && p.kind != PathKind::File {
                return Err(unsafe_path(&p.path, "a placeholder in a non-file".into()));
            }
        }
        for point in &self.entry_points {
            check_entry_point(point).map_err(|r| unsafe_path("info/link.json", r))?;
        }
        Ok(())
    }

    /// The bytes of its files, added up (what its layer holds, before trimming).
    pub fn file_bytes(&self) -> u64 {
        self.paths
            .iter()
            .filter(|p| p.kind == PathKind::File)
            .map(|p| p.size)
            .sum()
    }
}

/// Checks an entry point (`name = module:function`) names a plain command.
pub(crate) fn check_entry_point(
    point: &str,
) -> std::result::Result<rattler_conda_types::package::EntryPoint, String> {
    let parsed: rattler_conda_types::package::EntryPoint = point
        .parse()
        .map_err(|e| format!("entry point `{point}`: {e}"))?;
    if parsed.command.contains('/') || check_package_path(&parsed.command).is_some() {
        return Err(format!(
            "entry point `{point}` does not name a plain command"
        ));
    }
    let code_like = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    };
    if !code_like(&parsed.module) || !code_like(&parsed.function) {
        return Err(format!(
            "entry point `{point}` does not name a Python module and function"
        ));
    }
    Ok(parsed)
}

/// The string values of a JSON object (numbers and booleans as written), as conda reads them.
pub(crate) fn string_map(value: serde_json::Value) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            vars.insert(k, v);
        }
    }
    vars
}

/// Package contents kept by package sha256, so warm builds read no package file.
#[derive(Clone, Debug)]
pub struct ContentsCache {
    dir: PathBuf,
}

impl ContentsCache {
    /// A cache in `dir` (see [`crate::store::Store::buckets`]; its name carries the format
    /// version, bumped when [`PackageContents`] or how it is read changes).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The key of `record`'s package: its sha256 (or md5), when the record has one.
    pub fn key(record: &RepoDataRecord) -> Option<String> {
        let p = &record.package_record;
        p.sha256
            .map(|h| format!("sha256-{}", hex::encode(h)))
            .or_else(|| p.md5.map(|h| format!("md5-{}", hex::encode(h))))
    }

    /// The contents stored for `key`, if any (an unreadable entry counts as absent).
    pub fn get(&self, key: &str) -> Option<PackageContents> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Removes temporaries that killed runs left (see [`crate::atomic`]).
    pub fn remove_stale(&self) -> usize {
        crate::atomic::remove_stale(&self.dir)
    }

    /// Stores `contents` under `key`, atomically.
    pub fn put(&self, key: &str, contents: &PackageContents) -> Result<()> {
        let path = self.path(key);
        let bytes =
            serde_json::to_vec(contents).map_err(|e| Error::io("writing", &path)(e.into()))?;
        crate::atomic::write(&path, &bytes).map_err(Error::io("writing", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_name_plain_commands() {
        assert!(check_entry_point("tqdm = tqdm.cli:main").is_ok());
        assert!(check_entry_point("../../etc/x = tqdm.cli:main").is_err());
        assert!(check_entry_point("x = os; import evil:main").is_err());
    }
}
