//! Installing packages into a staging prefix, patched for the prefix they will have in the image.

use std::path::{Path, PathBuf};

use rattler::install::{Installer, LinkOptions};
use rattler::package_cache::PackageCache;
use std::collections::BTreeMap;

use rattler_conda_types::{RepoDataRecord, Subdir};

use super::{Error, Result};

/// Keys of `conda-meta/*.json` that hold build-machine paths and must not reach an image.
const HOST_PATH_KEYS: &[&str] = &["extracted_package_dir", "package_tarball_full_path", "link"];

/// Files the installer writes that belong to the build machine, not the environment.
const HOST_ONLY_FILES: &[&str] = &["CACHEDIR.TAG"];

/// An environment installed into a temporary directory, removed when dropped.
#[derive(Debug)]
pub struct StagedPrefix {
    dir: tempfile::TempDir,
    target_prefix: PathBuf,
}

impl StagedPrefix {
    /// The staging directory on this machine.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The prefix the files were patched for (where they live in the image).
    pub fn target_prefix(&self) -> &Path {
        &self.target_prefix
    }
}

/// Options for [`install`].
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// The package cache root (`pkgs/` lives below it).
    pub cache_dir: PathBuf,
    /// The platform the packages are for.
    pub subdir: Subdir,
    /// Where the environment lives inside the image.
    pub target_prefix: PathBuf,
}

/// Passes the installer's progress to a crate [`Reporter`](crate::reporter::Reporter).
struct InstallProgress {
    reporter: std::sync::Arc<dyn crate::reporter::Reporter>,
    linking: std::sync::Mutex<BTreeMap<usize, String>>,
    downloaded: std::sync::Mutex<BTreeMap<usize, u64>>,
}

impl InstallProgress {
    fn total_downloaded(&self) -> u64 {
        self.downloaded
            .lock()
            .map(|d| d.values().sum())
            .unwrap_or(0)
    }
}

impl rattler::install::Reporter for InstallProgress {
    fn on_transaction_start(
        &self,
        _: &rattler::install::Transaction<rattler_conda_types::PrefixRecord, RepoDataRecord>,
    ) {
    }
    fn on_transaction_operation_start(&self, _: usize) {}
    fn on_populate_cache_start(&self, operation: usize, _: &RepoDataRecord) -> usize {
        operation
    }
    fn on_validate_start(&self, cache_entry: usize) -> usize {
        cache_entry
    }
    fn on_validate_complete(&self, _: usize) {}
    fn on_download_start(&self, cache_entry: usize) -> usize {
        cache_entry
    }
    fn on_download_progress(&self, download_idx: usize, progress: u64, _total: Option<u64>) {
        if let Ok(mut d) = self.downloaded.lock() {
            d.insert(download_idx, progress);
        }
        self.reporter.bytes_downloaded(self.total_downloaded());
    }
    fn on_download_completed(&self, _: usize) {}
    fn on_populate_cache_complete(&self, _: usize) {}
    fn on_unlink_start(&self, operation: usize, _: &rattler_conda_types::PrefixRecord) -> usize {
        operation
    }
    fn on_unlink_complete(&self, _: usize) {}
    fn on_link_start(&self, operation: usize, record: &RepoDataRecord) -> usize {
        if let Ok(mut l) = self.linking.lock() {
            l.insert(
                operation,
                record.package_record.name.as_normalized().to_string(),
            );
        }
        operation
    }
    fn on_link_complete(&self, index: usize) {
        let name = self
            .linking
            .lock()
            .ok()
            .and_then(|mut l| l.remove(&index))
            .unwrap_or_default();
        self.reporter.package_installed(&name);
    }
    fn on_transaction_operation_complete(&self, _: usize) {}
    fn on_transaction_complete(&self) {}
    fn on_post_link_start(&self, _: &str, _: &str) -> usize {
        0
    }
    fn on_post_link_complete(&self, _: usize, _: bool) {}
    fn on_pre_unlink_start(&self, _: &str, _: &str) -> usize {
        0
    }
    fn on_pre_unlink_complete(&self, _: usize, _: bool) {}
}

/// Downloads (or takes from the cache) and links `records` into a new staging prefix.
///
/// The staging prefix is made in the temporary directory (`$TMPDIR`). Files without
/// placeholders are hard links into the package cache when both are on one filesystem (read,
/// never written: the staging prefix is only read to write layers), else copies; files with
/// placeholders are patched copies for `target_prefix`. (Staging beside the cache on disk was
/// measured 2x slower than copies into a tmpfs `/tmp` for the bench environment.) Link scripts
/// are not run, and `conda-meta` records are stripped of build-machine paths.
pub async fn install(
    records: Vec<RepoDataRecord>,
    options: &InstallOptions,
    client: reqwest_middleware::ClientWithMiddleware,
    reporter: std::sync::Arc<dyn crate::reporter::Reporter>,
) -> Result<StagedPrefix> {
    let dir = tempfile::Builder::new()
        .prefix("conda-docker-staging-")
        .tempdir()
        .map_err(Error::io(
            "creating a staging directory in",
            std::env::temp_dir(),
        ))?;
    Installer::new()
        .with_package_cache(PackageCache::new(
            options.cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR),
        ))
        .with_download_client(client)
        .with_target_platform(options.subdir)
        .with_alternative_target_prefix(&options.target_prefix)
        .with_execute_link_scripts(false)
        .with_reporter(InstallProgress {
            reporter,
            linking: Default::default(),
            downloaded: Default::default(),
        })
        .with_link_options(LinkOptions {
            allow_hard_links: Some(true),
            ..Default::default()
        })
        .install(dir.path(), records)
        .await
        .map_err(Error::Install)?;
    let staged = StagedPrefix {
        dir,
        target_prefix: options.target_prefix.clone(),
    };
    scrub(staged.path())?;
    Ok(staged)
}

/// Removes build-machine traces from an installed prefix.
fn scrub(prefix: &Path) -> Result<()> {
    for name in HOST_ONLY_FILES {
        let p = prefix.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(Error::io("removing", &p))?;
        }
    }
    let meta = prefix.join("conda-meta");
    for entry in std::fs::read_dir(&meta).map_err(Error::io("reading", &meta))? {
        let path = entry.map_err(Error::io("reading", &meta))?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(Error::io("reading", &path))?;
        let mut record: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::io("parsing", &path)(e.into()))?;
        if let Some(obj) = record.as_object_mut() {
            for key in HOST_PATH_KEYS {
                obj.remove(*key);
            }
        }
        let mut out = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::io("writing", &path)(e.into()))?;
        out.push(b'\n');
        std::fs::write(&path, out).map_err(Error::io("writing", &path))?;
        // Readable by every user of the image, as conda writes them.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(Error::io("writing", &path))?;
    }
    Ok(())
}

/// The variables packages declare for activation: `etc/conda/env_vars.d/*.json` (in file-name
/// order), then `conda-meta/state`'s `env_vars`, as `conda activate` sets them.
pub fn activation_variables(prefix: &Path) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let dir = prefix.join("etc/conda/env_vars.d");
    if dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(Error::io("reading", &dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            vars.extend(super::prefix::json_variables(&f, Some)?);
        }
    }
    vars.extend(super::prefix::state_variables(prefix)?);
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_variables_follow_conda() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("etc/conda/env_vars.d")).unwrap();
        std::fs::create_dir_all(p.join("conda-meta")).unwrap();
        std::fs::write(
            p.join("etc/conda/env_vars.d/a.json"),
            r#"{"PROJ_DATA": "/opt/conda/share/proj", "X": "a"}"#,
        )
        .unwrap();
        std::fs::write(p.join("etc/conda/env_vars.d/b.json"), r#"{"X": "b"}"#).unwrap();
        std::fs::write(
            p.join("conda-meta/state"),
            r#"{"env_vars": {"X": "state", "LEVEL": 3}}"#,
        )
        .unwrap();
        let vars = activation_variables(p).unwrap();
        assert_eq!(vars["PROJ_DATA"], "/opt/conda/share/proj");
        assert_eq!(vars["X"], "state", "conda-meta/state comes last");
        assert_eq!(vars["LEVEL"], "3");
        assert!(activation_variables(&p.join("nothing")).unwrap().is_empty());
    }
}
