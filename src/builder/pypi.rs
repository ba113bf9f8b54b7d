//! PyPI distributions in the image: an input's wheels (locked, or resolved for its `pip:`
//! section), checked against what the conda packages provide, installed as pip installs them
//! ([`crate::pypi::wheel`]) and made into layers of their own, keyed like package layers (the
//! wheels' sha256, the prefix, the scheme, the mtime and the owner), so they are cached and
//! shared across images.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::conda::layering::{PlanPackage, auto_groups};
use crate::conda::lock::LockedPypi;
use crate::image::layer_tar::{Entry, EntryData, FileSource};
use crate::image::{Cancel, Digest};
use futures::{StreamExt, TryStreamExt};

use crate::pypi::index::Index;
use crate::pypi::normalize_name;
use crate::pypi::provides::Provided;
use crate::pypi::requirements::Requirements;
use crate::pypi::resolve;
use crate::pypi::wheel::{self, FileData, InstallOptions, InstalledWheel, Limits, Scheme};
use crate::store::{BlobCache, KeyedLayer};

use super::compose::LayerSettings;

/// Why the PyPI part of an environment cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum PypiError {
    /// PyPI distributions were asked for, but the environment has no python.
    #[error("pip: needs python in the environment; add `python` to its dependencies")]
    NoPython,
    /// A locked wheel has no hash to check it by.
    #[error(
        "PyPI package `{name}` {version} is locked without a sha256, so what is installed cannot \
         be checked; lock it with its hash, or pass --allow-unhashed-pypi"
    )]
    Unhashed {
        /// The distribution.
        name: String,
        /// Its version.
        version: String,
    },
    /// The index could not give a wheel (unreachable, refused, a hash that does not match).
    #[error(transparent)]
    Index(#[from] crate::pypi::index::Error),
    /// The `pip:` requirements could not be resolved; the resolver's explanation.
    #[error(transparent)]
    Resolve(#[from] crate::pypi::resolve::Error),
    /// PyPI wheels were asked for a platform they are not installed for.
    #[error(
        "pip: PyPI wheels are installed for linux-64 and linux-aarch64 images, not {0}; \
         drop the `pip:` section or the PyPI packages for this platform"
    )]
    Platform(String),
    /// The python or glibc version could not be read as the wheel tags need it.
    #[error("pip: cannot tell the {what} version from `{version}`")]
    Version {
        /// `python` or `glibc`.
        what: &'static str,
        /// As found.
        version: String,
    },
    /// pip would replace a distribution a conda package installed, with another version.
    #[error(
        "PyPI package `{name}` {wants} is asked for, but the conda package `{package}` already \
         provides {name} {has}; pin {name}=={has} or drop the conda package"
    )]
    Conflict {
        /// The distribution.
        name: String,
        /// The version pip would install.
        wants: String,
        /// The conda package that provides it.
        package: String,
        /// The version it provides.
        has: String,
    },
    /// A wheel would overwrite a file a conda package or an earlier wheel put there.
    #[error(
        "wheel `{wheel}` would overwrite `{path}`, which `{owner}` installs; pip would silently \
         replace it, so the build stops"
    )]
    Clobber {
        /// The wheel.
        wheel: String,
        /// The path, relative to the prefix.
        path: String,
        /// What installs it first.
        owner: String,
    },
    /// The wheel is unsafe or malformed.
    #[error(transparent)]
    Wheel(#[from] crate::pypi::Error),
}

/// A wheel on this machine, checked, to install.
#[derive(Clone, Debug)]
pub struct Wheel {
    /// Its file name (`name-version-tags.whl`).
    pub file_name: String,
    /// Where its bytes are (the wheel cache).
    pub path: PathBuf,
    /// Their sha256, hex.
    pub sha256: String,
    /// Where it came from (the lockfile's or index's URL).
    pub url: url::Url,
}

/// A wheel to install, as a lockfile pins it or the resolver chose it; not fetched yet.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pin {
    /// The distribution.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub file_name: String,
    /// Where it is fetched from (http(s) or `file://`).
    pub url: url::Url,
    /// Its sha256, hex (`None` only for a lock entry allowed without one).
    pub sha256: Option<String>,
}

/// How many wheels are fetched at once.
const CONCURRENT_WHEELS: usize = 4;

/// The wheels a lockfile pins; one without a hash is refused unless `allow_unhashed`.
pub fn locked_pins(locked: &[LockedPypi], allow_unhashed: bool) -> Result<Vec<Pin>, PypiError> {
    locked
        .iter()
        .map(|l| {
            if l.sha256.is_none() && !allow_unhashed {
                return Err(PypiError::Unhashed {
                    name: l.name.clone(),
                    version: l.version.clone(),
                });
            }
            Ok(Pin {
                name: l.name.clone(),
                version: l.version.clone(),
                file_name: l
                    .url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .map(crate::pypi::index::percent_decode)
                    .unwrap_or_default(),
                url: l.url.clone(),
                sha256: l.sha256.clone(),
            })
        })
        .collect()
}

/// The wheels `requirements` resolve to for `target` over `index`, conda's distributions in
/// `provided` fixed at their versions.
pub async fn resolved_pins(
    requirements: &Requirements,
    target: &resolve::Target,
    provided: &BTreeMap<String, Provided>,
    index: &Index,
) -> Result<Vec<Pin>, PypiError> {
    Ok(resolve::resolve(requirements, target, provided, index)
        .await?
        .into_iter()
        .map(|r| Pin {
            name: r.name,
            version: r.version,
            file_name: r.filename,
            url: r.url,
            sha256: Some(r.sha256),
        })
        .collect())
}

/// Fetches `pins` into the wheel cache (from `file://` or http(s)), a few at a time, each
/// checked against its sha256.
pub async fn fetch(index: &Index, pins: &[Pin]) -> Result<Vec<Wheel>, PypiError> {
    futures::stream::iter(pins.iter().map(|pin| async move {
        let (path, sha256) = index
            .fetch_wheel(&pin.url, pin.sha256.as_deref(), &pin.file_name)
            .await?;
        Ok::<_, PypiError>(Wheel {
            file_name: pin.file_name.clone(),
            path,
            sha256,
            url: pin.url.clone(),
        })
    }))
    .buffered(CONCURRENT_WHEELS)
    .try_collect()
    .await
}

/// The tags' target for a python `version` (`3.11.7`), a glibc `glibc` (`2.28`) and `subdir`.
pub fn resolve_target(
    version: &str,
    glibc: &str,
    subdir: rattler_conda_types::Subdir,
) -> Result<resolve::Target, PypiError> {
    let numbers = |what: &'static str, v: &str| -> Result<Vec<u32>, PypiError> {
        let bad = || PypiError::Version {
            what,
            version: v.to_string(),
        };
        let parts: Vec<u32> = v
            .split('.')
            .take(3)
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u32>().map_err(|_| bad())
            })
            .collect::<Result<_, _>>()?;
        if parts.len() < 2 {
            return Err(bad());
        }
        Ok(parts)
    };
    let python = numbers("python", version)?;
    let glibc = numbers("glibc", glibc)?;
    let arch = match subdir {
        rattler_conda_types::Subdir::Linux64 => resolve::Arch::X86_64,
        rattler_conda_types::Subdir::LinuxAarch64 => resolve::Arch::Aarch64,
        other => return Err(PypiError::Platform(other.to_string())),
    };
    Ok(resolve::Target {
        python: (python[0], python[1], python.get(2).copied().unwrap_or(0)),
        glibc: (glibc[0], glibc[1]),
        arch,
    })
}

/// Where wheels go for the environment's python.
#[derive(Clone, Debug)]
pub struct Target {
    /// The install scheme (site-packages from the python record).
    pub scheme: Scheme,
    /// The interpreter in the image, for scripts' shebangs.
    pub python: String,
}

impl Target {
    /// The target for `python` (the environment's) in the prefix `prefix`.
    pub fn new(python: &rattler::install::PythonInfo, prefix: &Path) -> Self {
        let (major, minor) = python.short_version;
        let mut scheme = Scheme::conda(major as u32, minor as u32, "");
        scheme.site_packages = python.site_packages_path.to_string_lossy().into_owned();
        Self {
            scheme,
            python: prefix.join(&python.path).to_string_lossy().into_owned(),
        }
    }
}

/// What installing a wheel gave, kept by the wheel's sha256 and the install options, so a warm
/// build reads no wheel: the files' places, sizes, sha256 and offsets in the wheel (their bytes
/// are streamed from the wheel, and checked again, only when a layer is written).
#[derive(Clone, Debug)]
pub struct InstalledCache {
    dir: PathBuf,
}

/// Bumped when [`InstalledWheel`] or how a wheel is installed changes.
const INSTALLED_FORMAT: &str = "installed-wheel-v1";

impl InstalledCache {
    /// A cache in `dir` (see [`crate::store::Store::buckets`]).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, sha256: &str, options: &InstallOptions) -> PathBuf {
        let key = serde_json::json!({
            "format": INSTALLED_FORMAT,
            "wheel": sha256.to_ascii_lowercase(),
            "options": options,
        });
        self.dir.join(format!(
            "{}.json",
            Digest::of(key.to_string().as_bytes()).hex()
        ))
    }

    /// `wheel` installed with `options`: from the cache, else installed and stored (a cache
    /// that cannot be written only makes the next build slower).
    pub fn install(
        &self,
        wheel: &Wheel,
        options: &InstallOptions,
    ) -> Result<InstalledWheel, PypiError> {
        let path = self.path(&wheel.sha256, options);
        if let Some(found) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<InstalledWheel>(&b).ok())
        {
            crate::atomic::touch(&path);
            return Ok(found);
        }
        let installed = wheel::install(&wheel.path, &wheel.file_name, options, &Limits::default())?;
        if let Ok(bytes) = serde_json::to_vec(&installed)
            && let Err(e) = crate::atomic::write(&path, &bytes)
        {
            tracing::debug!("not caching `{}`: {e}", path.display());
        }
        Ok(installed)
    }
}

/// Installs `wheels` (the result sorted by name), leaving out those a conda package provides at
/// the same version, and refusing one that would replace a conda package's distribution with
/// another version or overwrite a file (`owners` maps the conda packages' paths to their
/// package).
pub fn install(
    wheels: &[Wheel],
    target: &Target,
    provided: &BTreeMap<String, Provided>,
    owners: &HashMap<String, String>,
    cache: &InstalledCache,
) -> Result<Vec<(Wheel, InstalledWheel)>, PypiError> {
    let mut owners = owners.clone();
    let mut out = Vec::with_capacity(wheels.len());
    for w in wheels {
        let options = InstallOptions {
            scheme: target.scheme.clone(),
            python: target.python.clone(),
            // Not `REQUESTED`: a lockfile does not say which wheels were asked for, and an
            // environment file and its lock must give one image.
            requested: false,
            direct_url: None,
        };
        let installed = cache.install(w, &options)?;
        if let Some(p) = provided.get(&normalize_name(&installed.name)) {
            if crate::pypi::same_version(&p.version, &installed.version) {
                continue;
            }
            return Err(PypiError::Conflict {
                name: installed.name.clone(),
                wants: installed.version.clone(),
                package: p.package.clone(),
                has: p.version.clone(),
            });
        }
        for f in &installed.files {
            if let Some(owner) = owners.insert(f.path.clone(), w.file_name.clone()) {
                return Err(PypiError::Clobber {
                    wheel: w.file_name.clone(),
                    path: f.path.clone(),
                    owner,
                });
            }
        }
        out.push((w.clone(), installed));
    }
    // One order whatever order they were locked or resolved in, so the image is the same.
    out.sort_by_cached_key(|(_, i)| normalize_name(&i.name));
    Ok(out)
}

/// The wheels' layers, bottom first: each group lists indexes into `installed`. One layer
/// each while `budget` allows, else grouped as `auto` groups packages.
pub fn groups(installed: &[(Wheel, InstalledWheel)], budget: usize) -> Vec<Vec<usize>> {
    let packages: Vec<PlanPackage> = installed
        .iter()
        .map(|(_, i)| PlanPackage {
            name: normalize_name(&i.name),
            size: i.size(),
        })
        .collect();
    auto_groups(&packages, budget.max(1))
}

/// What was installed, as a lockfile pins it.
pub fn locked(installed: &[(Wheel, InstalledWheel)]) -> Vec<LockedPypi> {
    installed
        .iter()
        .map(|(w, i)| LockedPypi {
            name: i.name.clone(),
            version: i.version.clone(),
            url: w.url.clone(),
            sha256: Some(w.sha256.clone()),
        })
        .collect()
}

/// `name-version` of an installed wheel, as layers and history name it.
pub fn dist(installed: &InstalledWheel) -> String {
    format!("{}-{}", installed.name, installed.version)
}

/// The key of the layer of `members`: everything its bytes depend on.
pub fn layer_key(
    members: &[&(Wheel, InstalledWheel)],
    target: &Target,
    settings: &LayerSettings,
) -> Digest {
    let key = serde_json::json!({
        "format": super::compose::LAYER_FORMAT,
        "kind": "pypi",
        "prefix": settings.target_prefix.to_string_lossy(),
        "site_packages": target.scheme.site_packages,
        "python": target.python,
        "owner": settings.owner.as_ref().map(|o| (o.root.to_string_lossy().into_owned(), o.uid, o.gid)),
        "mtime": settings.mtime,
        "wheels": members.iter().map(|(w, _)| &w.sha256).collect::<Vec<_>>(),
    });
    Digest::of(key.to_string().as_bytes())
}

/// Makes the layer of `members` and stores it in `cache` under `key`.
pub fn make_layer(
    members: &[&(Wheel, InstalledWheel)],
    settings: &LayerSettings,
    key: &Digest,
    cache: &BlobCache,
    cancel: &Cancel,
) -> crate::image::Result<KeyedLayer> {
    let in_image = settings
        .target_prefix
        .strip_prefix("/")
        .unwrap_or(&settings.target_prefix);
    let mut entries = Vec::new();
    for (w, installed) in members {
        let wheel = Arc::new(w.path.clone());
        for f in &installed.files {
            let data = match &f.data {
                FileData::Bytes(b) => EntryData::Bytes(b.clone()),
                FileData::Member(m) => EntryData::Source(Arc::new(WheelFile {
                    wheel: wheel.clone(),
                    member: m.clone(),
                })),
            };
            entries.push(Entry {
                path: in_image.join(&f.path),
                data,
                mode: f.mode,
            });
        }
    }
    super::compose::store_layer(entries, settings, Some(key), cache, cancel)
}

/// A file of a wheel, streamed out of it (and checked against its size and sha256).
#[derive(Debug)]
struct WheelFile {
    wheel: Arc<PathBuf>,
    member: wheel::WheelMember,
}

impl FileSource for WheelFile {
    fn open(&self) -> io::Result<(u64, Box<dyn Read + '_>)> {
        let reader = self.member.open(&self.wheel)?;
        Ok((self.member.size, Box::new(reader)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_installed_once_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let name = "click-8.5.1-py3-none-any.whl";
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pypi/wheels");
        let path = dir.path().join(name);
        std::fs::copy(fixture.join(name), &path).unwrap();
        let wheel = Wheel {
            file_name: name.into(),
            sha256: crate::pypi::sha256_file(&path).unwrap(),
            path: path.clone(),
            url: url::Url::from_file_path(&path).unwrap(),
        };
        let options = InstallOptions {
            scheme: Scheme::conda(3, 11, ""),
            python: "/opt/conda/bin/python3.11".into(),
            requested: false,
            direct_url: None,
        };
        let cache = InstalledCache::new(&dir.path().join("installed"));
        let first = cache.install(&wheel, &options).unwrap();
        assert_eq!(first.name, "click");
        // The wheel is gone: what the cache kept is all a warm build needs.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cache.install(&wheel, &options).unwrap(), first);
        // Other options (another prefix's python) are another entry.
        let other = InstallOptions {
            python: "/srv/env/bin/python3.11".into(),
            ..options
        };
        assert!(cache.install(&wheel, &other).is_err());
    }
}
