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
use crate::pypi::normalize_name;
use crate::pypi::provides::Provided;
use crate::pypi::wheel::{self, FileData, InstallOptions, InstalledWheel, Limits, Scheme};
use crate::transport::blob_cache::KeyedLayer;
use crate::transport::registry::BlobCache;

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
    /// A wheel's bytes are not what the lockfile or index says.
    #[error(
        "wheel `{wheel}`: its sha256 is {found}, but {expected} was expected; it was not installed"
    )]
    Hash {
        /// The wheel's file name.
        wheel: String,
        /// The hash recorded.
        expected: String,
        /// The hash of the bytes.
        found: String,
    },
    /// A wheel could not be fetched.
    #[error("wheel `{url}`: {reason}")]
    Fetch {
        /// Where it was to come from.
        url: String,
        /// What went wrong.
        reason: String,
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
    /// Where its bytes are.
    pub path: PathBuf,
    /// Their sha256, hex.
    pub sha256: String,
    /// Where it came from (the lockfile's or index's URL).
    pub url: url::Url,
}

/// The locked wheels, checked against their lockfile hashes (a wheel without one is refused
/// unless `allow_unhashed`).
pub fn locked_wheels(locked: &[LockedPypi], allow_unhashed: bool) -> Result<Vec<Wheel>, PypiError> {
    locked
        .iter()
        .map(|l| {
            if l.sha256.is_none() && !allow_unhashed {
                return Err(PypiError::Unhashed {
                    name: l.name.clone(),
                    version: l.version.clone(),
                });
            }
            local_wheel(&l.url, l.sha256.as_deref())
        })
        .collect()
}

/// A wheel at a `file://` URL, checked against `sha256` when given.
fn local_wheel(url: &url::Url, sha256: Option<&str>) -> Result<Wheel, PypiError> {
    let fetch_error = |reason: String| PypiError::Fetch {
        url: url.to_string(),
        reason,
    };
    let file_name = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    if url.scheme() != "file" {
        return Err(fetch_error(
            "wheels are installed from file:// locations only in this version".into(),
        ));
    }
    let path = url
        .to_file_path()
        .map_err(|()| fetch_error("not a local path".into()))?;
    let found = wheel::file_sha256(&path, &file_name)?;
    if let Some(expected) = sha256
        && !expected.eq_ignore_ascii_case(&found)
    {
        return Err(PypiError::Hash {
            wheel: file_name,
            expected: expected.to_string(),
            found,
        });
    }
    Ok(Wheel {
        file_name,
        path,
        sha256: found,
        url: url.clone(),
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

/// Installs `wheels` (the result sorted by name), leaving out those a conda package provides at the same version, and
/// refusing one that would replace a conda package's distribution with another version or
/// overwrite a file (`owners` maps the conda packages' paths to their package).
pub fn install(
    wheels: &[Wheel],
    target: &Target,
    provided: &BTreeMap<String, Provided>,
    owners: &HashMap<String, String>,
) -> Result<Vec<(Wheel, InstalledWheel)>, PypiError> {
    let mut owners = owners.clone();
    let mut out = Vec::with_capacity(wheels.len());
    for w in wheels {
        let options = InstallOptions {
            scheme: target.scheme.clone(),
            python: target.python.clone(),
            requested: false,
            direct_url: None,
        };
        let installed = wheel::install(&w.path, &w.file_name, &options, &Limits::default())?;
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
