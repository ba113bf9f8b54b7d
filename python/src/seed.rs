//! The native side of the seed's 0.1.x API (`conda_docker.conda` as conda-store calls it):
//! an environment's records read from its `conda-meta`, specs solved in-process, records
//! fetched into a package directory, the settings `conda_info` reports without conda, and a
//! layer's bytes. Records cross as JSON, in the `repodata_record.json` shape.

use std::path::PathBuf;
use std::sync::Arc;

use conda_docker::builder::DEFAULT_GLIBC;
use conda_docker::conda::channel::Sources;
use conda_docker::conda::fetch::Fetcher;
use conda_docker::conda::{prefix, solve};
use conda_docker::env::Env;
use conda_docker::image::{Cancel, Encoding, LayerCompression};
use conda_docker::platform::parse_subdir;
use conda_docker::reporter::NoReporter;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{Fail, Kind, NativeLayer, block_on, fail, run};

/// A library conda error, raised as a build's would be (`SolveError` for a failed solve).
fn conda_fail(e: conda_docker::conda::Error) -> Fail {
    Fail::from(conda_docker::builder::Error::Conda(e))
}

/// Mirrors as `--mirror CANONICAL=LOCATION` gives them (relative to `env`'s directory), then
/// the config file's `[mirrors]`.
fn sources(mirrors: &[String], env: &Env) -> Result<Sources, Fail> {
    let config = conda_docker::settings::config_file(env).map_err(fail)?;
    Sources::configured(mirrors, &[], env.cwd(), config.as_deref()).map_err(conda_fail)
}

/// Each record as JSON (a `repodata_record.json`).
macro_rules! to_json {
    ($records:expr) => {
        $records
            .iter()
            .map(|r| serde_json::to_string(r).map_err(fail))
            .collect::<Result<Vec<String>, Fail>>()
    };
}

/// The records of the environment at `prefix` (its `conda-meta`), in dependency order.
#[pyfunction]
fn prefix_records(py: Python<'_>, prefix: PathBuf) -> PyResult<Vec<String>> {
    let read = prefix::read_records(&prefix)
        .map(solve::sort_by_dependency)
        .map_err(|e| conda_fail(e).into_py(py))?;
    to_json!(read).map_err(|f| f.into_py(py))
}

/// The directory of the environment named `name`, found as `conda activate NAME` finds it.
#[pyfunction]
fn find_named_prefix(py: Python<'_>, name: &str) -> PyResult<PathBuf> {
    prefix::find_named(name, &Env::from_process()).map_err(|e| conda_fail(e).into_py(py))
}

/// `specs` solved for `platform` against `channels` (names, URLs or directories), with the
/// default virtual packages (`__glibc` 2.17 unless overridden in `virtual_packages`).
#[pyfunction]
#[pyo3(signature = (specs, channels, platform, mirrors, cache_dir=None, virtual_packages=Default::default()))]
fn solve_specs(
    py: Python<'_>,
    specs: Vec<String>,
    channels: Vec<String>,
    platform: String,
    mirrors: Vec<String>,
    cache_dir: Option<PathBuf>,
    virtual_packages: std::collections::BTreeMap<String, String>,
) -> PyResult<Vec<String>> {
    let cancel = Cancel::new();
    run(py, &cancel, move || {
        let subdir = parse_subdir(&platform).map_err(fail)?;
        let env = Env::from_process();
        let sources = sources(&mirrors, &env)?;
        let fetch = channels
            .iter()
            .map(|c| sources.parse_channel(c, env.cwd(), subdir).map(|s| s.fetch))
            .collect::<Result<Vec<_>, _>>()
            .map_err(conda_fail)?;
        let root = conda_docker::conda::cache_root(cache_dir.as_deref()).map_err(conda_fail)?;
        let gateway = solve::gateway(&root, solve::http_client());
        let mut overrides = virtual_packages;
        let glibc = overrides
            .remove("__glibc")
            .unwrap_or_else(|| DEFAULT_GLIBC.to_string());
        let virtuals = solve::virtual_packages(subdir, &glibc, &overrides).map_err(conda_fail)?;
        let parsed = solve::parse_specs(&specs).map_err(conda_fail)?;
        let solved = block_on(async {
            solve::solve(&gateway, &fetch, subdir, parsed, virtuals)
                .await
                .map_err(conda_fail)
        })?;
        to_json!(solve::sort_by_dependency(solved))
    })
}

/// Fetches each record (JSON) into the package directory `pkgs_dir`, checked against its
/// sha256 (or md5), from where `mirrors` and the config file say its channel is; returns each
/// package's extracted directory.
#[pyfunction]
fn fetch_records(
    py: Python<'_>,
    pkgs_dir: PathBuf,
    records: Vec<String>,
    mirrors: Vec<String>,
) -> PyResult<Vec<PathBuf>> {
    let cancel = Cancel::new();
    run(py, &cancel, move || {
        let env = Env::from_process();
        let sources = sources(&mirrors, &env)?;
        let store = conda_docker::store::Store::at(None, &env);
        let fetcher = Fetcher::new(
            &pkgs_dir,
            &store.archives_dir(),
            &store.tmp_dir(),
            solve::http_client(),
            Arc::new(NoReporter),
            sources,
        )
        .with_package_dir(&pkgs_dir);
        block_on(async {
            let _lock = fetcher.lock().await.map_err(conda_fail)?;
            let mut dirs = Vec::with_capacity(records.len());
            for text in &records {
                let record = serde_json::from_str(text).map_err(|e| {
                    Fail::new(Kind::Base, format!("not a package record: {e}: {text}"))
                })?;
                dirs.push(fetcher.fetch_extracted(&record).await.map_err(conda_fail)?);
            }
            Ok(dirs)
        })
    })
}

/// What `conda_info` reports without conda: the package directory of the cache below
/// `cache_dir` (else rattler's shared cache), and the mirrors of the config file as
/// (canonical, fetched-from) URLs.
#[pyfunction]
#[pyo3(signature = (cache_dir=None))]
fn conda_settings(
    py: Python<'_>,
    cache_dir: Option<PathBuf>,
) -> PyResult<(PathBuf, Vec<(String, String)>)> {
    let settings = || -> Result<_, Fail> {
        let root = conda_docker::conda::cache_root(cache_dir.as_deref()).map_err(conda_fail)?;
        let mirrors = sources(&[], &Env::from_process())?
            .mirrors()
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .collect();
        Ok((root.join("pkgs"), mirrors))
    };
    settings().map_err(|f| f.into_py(py))
}

/// The layer's bytes: its uncompressed tar, or (`compressed`) the gzip blob a registry gets
/// (a stored gzip blob as it is); with the sha256 (hex) of those bytes.
#[pyfunction]
fn layer_bytes(
    py: Python<'_>,
    layer: PyRef<'_, NativeLayer>,
    compressed: bool,
) -> PyResult<(Py<PyBytes>, String)> {
    let layer = layer.layer.clone();
    let cancel = Cancel::new();
    let c = cancel.clone();
    let (bytes, digest) = run(py, &cancel, move || {
        let encoding = if compressed {
            Encoding::Compressed(LayerCompression::default())
        } else {
            Encoding::Uncompressed
        };
        let mut out = Vec::new();
        let written = layer.write_to(&mut out, encoding, &c)?;
        Ok((out, written.digest.hex().to_string()))
    })?;
    Ok((PyBytes::new(py, &bytes).unbind(), digest))
}

/// Adds this module's functions to `_native`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(prefix_records, m)?)?;
    m.add_function(wrap_pyfunction!(find_named_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(solve_specs, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_records, m)?)?;
    m.add_function(wrap_pyfunction!(conda_settings, m)?)?;
    m.add_function(wrap_pyfunction!(layer_bytes, m)?)?;
    Ok(())
}
