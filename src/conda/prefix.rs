//! Existing conda environments (`-p PATH`, `-n NAME`): their packages, read from `conda-meta`.
//!
//! Only the records are read; the packages are installed fresh from the cache or their URLs,
//! never copied from the environment, which may have been modified or hold host paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use super::{Error, Result};
use crate::env::Env;

/// The variables set on the environment at `prefix` (`conda env config vars set`), from its
/// `conda-meta/state`.
pub fn state_variables(prefix: &Path) -> Result<BTreeMap<String, String>> {
    let state = prefix.join("conda-meta/state");
    if !state.is_file() {
        return Ok(BTreeMap::new());
    }
    json_variables(&state, |v| v.get("env_vars").cloned())
}

/// The string map `pick` finds in the JSON file at `path` (numbers and booleans as written).
pub(crate) fn json_variables(
    path: &Path,
    pick: impl Fn(serde_json::Value) -> Option<serde_json::Value>,
) -> Result<BTreeMap<String, String>> {
    let bytes = crate::capped::read_file(path, crate::capped::JSON_CAP)
        .map_err(Error::io("reading", path))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Error::io("parsing", path)(e.into()))?;
    let mut vars = BTreeMap::new();
    if let Some(serde_json::Value::Object(map)) = pick(value) {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            vars.insert(k, v);
        }
    }
    Ok(vars)
}

/// The package records of the environment at `prefix`.
pub fn read_records(prefix: &Path) -> Result<Vec<RepoDataRecord>> {
    let meta = prefix.join("conda-meta");
    if !meta.is_dir() {
        return Err(Error::Lock {
            path: prefix.to_path_buf(),
            reason: "not a conda environment: it has no conda-meta directory".into(),
        });
    }
    let mut records = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&meta)
        .map_err(Error::io("reading", &meta))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let record = PrefixRecord::from_path(&path).map_err(|e| Error::Lock {
            path: path.clone(),
            reason: format!("not a conda package record: {e}"),
        })?;
        records.push(record.repodata_record);
    }
    if records.is_empty() {
        return Err(Error::Lock {
            path: prefix.to_path_buf(),
            reason: "the environment has no packages".into(),
        });
    }
    Ok(records)
}

/// Where conda keeps named environments, in the order conda searches them.
fn env_dirs(env: &Env) -> Vec<PathBuf> {
    let home = env.home();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(paths) = env.var("CONDA_ENVS_PATH") {
        dirs.extend(std::env::split_paths(paths));
    }
    for var in ["CONDA_ROOT", "CONDA_PREFIX", "MAMBA_ROOT_PREFIX"] {
        if let Some(p) = env.path(var) {
            dirs.push(p.join("envs"));
        }
    }
    if let Some(h) = &home {
        dirs.push(h.join(".conda/envs"));
        for install in [
            "miniforge3",
            "mambaforge",
            "miniconda3",
            "anaconda3",
            ".pixi/envs",
        ] {
            dirs.push(h.join(install).join("envs"));
        }
    }
    dirs.push(PathBuf::from("/opt/conda/envs"));
    dirs
}

/// Finds the environment named `name` where `env` says conda keeps them, listing where it
/// looked when it is not there.
pub fn find_named(name: &str, env: &Env) -> Result<PathBuf> {
    let mut looked = Vec::new();
    for dir in env_dirs(env) {
        let candidate = dir.join(name);
        if candidate.join("conda-meta").is_dir() {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    // conda's registry of environments, wherever they live.
    if let Some(home) = env.home() {
        let registry = home.join(".conda/environments.txt");
        if let Ok(text) = std::fs::read_to_string(&registry) {
            for line in text.lines().map(str::trim) {
                let p = PathBuf::from(line);
                if p.file_name().is_some_and(|n| n == name) && p.join("conda-meta").is_dir() {
                    return Ok(p);
                }
            }
        }
        looked.push(registry.display().to_string());
    }
    Err(Error::Lock {
        path: PathBuf::from(name),
        reason: format!(
            "no conda environment of that name; looked in: {}",
            looked.join(", ")
        ),
    })
}
