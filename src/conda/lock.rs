//! Lockfiles: conda's explicit files, conda-lock's `conda-lock.yml` and `pixi.lock`, read into
//! the exact packages to install (no solve), and written from what a build installed.
//!
//! A lockfile is the source of truth: its packages are taken as it records them (URL, hashes
//! and what else its format carries) and no repodata is read, so a lockfile builds offline
//! from the package cache and gives the same image next month. Each package is fetched and
//! checked against the lockfile's sha256 (or md5); the image's records are then made from the
//! package's own `info/index.json` ([`super::record`]).

use std::path::Path;

use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{PackageName, PackageRecord, RepoDataRecord, Subdir};
use url::Url;

use super::{Error, Result};

/// A package as a lockfile names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedPackage {
    /// Where the archive is.
    pub url: Url,
    /// Its sha256 (lowercase hex), if the lockfile has one.
    pub sha256: Option<String>,
    /// Its md5 (lowercase hex), if the lockfile has one.
    pub md5: Option<String>,
    /// What the lockfile itself records of the package (pixi.lock: the whole record;
    /// conda-lock: name, version, build and dependencies), if anything.
    pub record: Option<PackageRecord>,
}

/// A PyPI distribution as a lockfile pins it (pixi.lock's `pypi` entries, conda-lock's
/// `manager: pip`): always a wheel, refused otherwise when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedPypi {
    /// The distribution's name, as the lockfile writes it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Where the wheel is (`file://` for a path, made absolute against the lockfile).
    pub url: Url,
    /// The wheel's sha256 (lowercase hex), if the lockfile has one.
    pub sha256: Option<String>,
}

/// What a lockfile pins for one platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locked {
    /// The conda packages.
    pub conda: Vec<LockedPackage>,
    /// The PyPI distributions, installed after them.
    pub pypi: Vec<LockedPypi>,
}

/// The lockfile formats, told apart by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockFormat {
    /// conda's `@EXPLICIT` list of URLs.
    Explicit,
    /// conda-lock's unified `conda-lock.yml` (CEP-37).
    CondaLock,
    /// pixi's `pixi.lock`.
    Pixi,
}

/// What a `-f FILE` holds, judged by its content.
pub fn detect(text: &str) -> Option<LockFormat> {
    if text.lines().any(|l| l.trim() == "@EXPLICIT") {
        return Some(LockFormat::Explicit);
    }
    let top: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .collect();
    if top.contains(&"environments") && top.contains(&"packages") {
        Some(LockFormat::Pixi)
    } else if top.contains(&"metadata") && top.contains(&"package") {
        Some(LockFormat::CondaLock)
    } else {
        None
    }
}

fn lock_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Lock {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads the packages for `subdir` (and, for pixi.lock, `environment`) from the lockfile at `path`.
pub fn read(
    path: &Path,
    text: &str,
    format: LockFormat,
    subdir: Subdir,
    environment: &str,
) -> Result<Locked> {
    let locked = match format {
        LockFormat::Explicit => Locked {
            conda: read_explicit(path, text, subdir)?,
            pypi: Vec::new(),
        },
        LockFormat::CondaLock => read_conda_lock(path, text, subdir)?,
        LockFormat::Pixi => read_pixi(path, text, subdir, environment)?,
    };
    if locked.conda.is_empty() {
        return Err(lock_error(
            path,
            format!("the lockfile lists no packages for {subdir}: nothing to install"),
        ));
    }
    Ok(locked)
}

/// A locked PyPI distribution, checked to be a wheel (an sdist or a source tree would be
/// built, running its code on this machine).
fn locked_wheel(
    path: &Path,
    name: &str,
    version: &str,
    url: Url,
    sha256: Option<String>,
) -> Result<LockedPypi> {
    let file = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or_default()
        .to_string();
    if !file.ends_with(".whl") {
        return Err(lock_error(
            path,
            format!(
                "PyPI package `{name}` {version} is locked as `{url}`, which is not a wheel: \
                 conda-docker installs wheels only and does not build sdists (that would run \
                 the package's code on this machine); lock a wheel of it"
            ),
        ));
    }
    Ok(LockedPypi {
        name: name.to_string(),
        version: version.to_string(),
        url,
        sha256,
    })
}

fn read_explicit(path: &Path, text: &str, subdir: Subdir) -> Result<Vec<LockedPackage>> {
    let mut packages = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(platform) = line.strip_prefix("# platform:")
            && platform.trim() != subdir.as_str()
        {
            return Err(lock_error(
                path,
                format!(
                    "it is for platform {} (line {}), not {subdir}; it has no other",
                    platform.trim(),
                    n + 1
                ),
            ));
        }
        if line.is_empty() || line.starts_with('#') || line == "@EXPLICIT" {
            continue;
        }
        let (url, hash) = line.split_once('#').unwrap_or((line, ""));
        let url = Url::parse(url.trim()).map_err(|e| {
            lock_error(
                path,
                format!("line {}, column 1: `{url}` is not a URL: {e}", n + 1),
            )
        })?;
        let hash = hash.trim();
        let (sha256, md5) = match hash.strip_prefix("sha256:") {
            Some(h) => (Some(h.to_lowercase()), None),
            None if hash.len() == 64 => (Some(hash.to_lowercase()), None),
            None if hash.len() == 32 => (None, Some(hash.to_lowercase())),
            None if hash.is_empty() => (None, None),
            None => {
                return Err(lock_error(
                    path,
                    format!("line {}: `#{hash}` is neither an md5 nor a sha256", n + 1),
                ));
            }
        };
        packages.push(LockedPackage {
            url,
            sha256,
            md5,
            record: None,
        });
    }
    Ok(packages)
}

fn read_conda_lock(path: &Path, text: &str, subdir: Subdir) -> Result<Locked> {
    let document = rattler_conda_lock::Document::parse(text).map_err(|e| {
        let location = e
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or_default();
        lock_error(path, format!("{location}{e}"))
    })?;
    let lock = document.lock_file();
    let platforms: Vec<String> = lock.metadata.platforms.clone();
    if !platforms.iter().any(|p| p == subdir.as_str()) {
        return Err(lock_error(
            path,
            format!(
                "it has no platform {subdir}; it has: {}",
                platforms.join(", ")
            ),
        ));
    }
    let mut packages = Vec::new();
    let mut pypi = Vec::new();
    for p in &lock.package {
        if p.platform != subdir.as_str() {
            continue;
        }
        let url = Url::parse(&p.url).map_err(|e| {
            lock_error(
                path,
                format!("package `{}`: `{}` is not a URL: {e}", p.name, p.url),
            )
        })?;
        if !matches!(p.manager, rattler_conda_lock::Manager::Conda) {
            let sha256 = p.hash.sha256.as_ref().map(|h| h.to_lowercase());
            pypi.push(locked_wheel(path, &p.name, &p.version, url, sha256)?);
            continue;
        }
        let record = conda_lock_record(p, &url);
        packages.push(LockedPackage {
            url,
            sha256: p.hash.sha256.as_ref().map(|h| h.to_lowercase()),
            md5: p.hash.md5.as_ref().map(|h| h.to_lowercase()),
            record,
        });
    }
    Ok(Locked {
        conda: packages,
        pypi,
    })
}

/// A pixi.lock location as a URL: a path is relative to the lockfile's directory.
fn location_url(path: &Path, location: &rattler_lock::UrlOrPath) -> Result<Url> {
    if let Some(u) = location.as_url() {
        return Ok(u.clone());
    }
    let local = std::path::PathBuf::from(location.to_string());
    let local = if local.is_absolute() {
        local
    } else {
        path.parent().unwrap_or(Path::new(".")).join(local)
    };
    Url::from_file_path(&local)
        .map_err(|()| lock_error(path, format!("`{}` is not a usable path", local.display())))
}

fn read_pixi(path: &Path, text: &str, subdir: Subdir, environment: &str) -> Result<Locked> {
    // The text read (and bounded) once, not the file again.
    let lock = rattler_lock::LockFile::from_str_with_base_directory(text, path.parent())
        .map_err(|e| lock_error(path, e.to_string()))?;
    let env = lock.environment(environment).ok_or_else(|| {
        let names: Vec<&str> = lock.environments().map(|(n, _)| n).collect();
        lock_error(
            path,
            format!(
                "it has no environment `{environment}`; it has: {}",
                names.join(", ")
            ),
        )
    })?;
    let platform = env
        .platforms()
        .find(|p| p.subdir() == subdir)
        .ok_or_else(|| {
            let names: Vec<String> = env.platforms().map(|p| p.name().to_string()).collect();
            lock_error(
                path,
                format!(
                    "environment `{environment}` has no platform {subdir}; it has: {}",
                    names.join(", ")
                ),
            )
        })?;
    let mut packages = Vec::new();
    for p in env.conda_packages(platform).into_iter().flatten() {
        let Some(binary) = p.as_binary() else {
            return Err(lock_error(
                path,
                format!(
                    "the conda package at `{}` is read as a source package (built by pixi from \
                     source), which cannot be installed without building it: a package \
                     archive's entry names its `.conda` or `.tar.bz2` file in `conda:`, and this \
                     one does not; if the entry was edited by hand, run `pixi lock` again",
                    p.location()
                ),
            ));
        };
        let url = location_url(path, &binary.location)?;
        packages.push(LockedPackage {
            url,
            sha256: binary.package_record.sha256.map(hex::encode),
            md5: binary.package_record.md5.map(hex::encode),
            record: Some(binary.package_record.clone()),
        });
    }
    let mut pypi = Vec::new();
    for p in env.pypi_packages(platform).into_iter().flatten() {
        match p {
            rattler_lock::PypiPackageData::Distribution(w) => {
                let url = location_url(path, &w.location)?;
                let sha256 = w.hash.as_ref().and_then(|h| h.sha256()).map(hex::encode);
                pypi.push(locked_wheel(
                    path,
                    w.name.as_ref(),
                    &w.version.to_string(),
                    url,
                    sha256,
                )?);
            }
            rattler_lock::PypiPackageData::Source(s) => {
                return Err(lock_error(
                    path,
                    format!(
                        "PyPI package `{}` is locked as a source tree (`{}`): conda-docker \
                         installs wheels only and does not build from source; lock a wheel of it",
                        s.name.as_ref() as &str,
                        s.location
                    ),
                ));
            }
        }
    }
    Ok(Locked {
        conda: packages,
        pypi,
    })
}

/// `line L, column C: ` for a byte offset into `text`.
pub fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: ")
}

/// The channel URL, subdir and file name of a package URL (`.../conda-forge/linux-64/x.conda`).
fn split_url(url: &Url) -> Option<(Url, String, String)> {
    let mut segments: Vec<&str> = url.path_segments()?.collect();
    let file = segments.pop()?.to_string();
    let subdir = segments.pop()?.to_string();
    let mut channel = url.clone();
    channel.set_path(&format!("{}/", segments.join("/")));
    channel.set_fragment(None);
    Some((channel, subdir, file))
}

/// What a conda-lock entry records: name, version, build (from the file name when absent) and
/// dependencies; `None` when its name or version does not parse.
fn conda_lock_record(p: &rattler_conda_lock::Package, url: &Url) -> Option<PackageRecord> {
    let file = url.path_segments()?.next_back()?;
    let build = p.build.clone().or_else(|| {
        let stem = file
            .strip_suffix(".conda")
            .or_else(|| file.strip_suffix(".tar.bz2"))?;
        stem.rsplit('-').next().map(str::to_string)
    })?;
    let mut record = PackageRecord::new(
        PackageName::try_from(p.name.as_str()).ok()?,
        p.version.parse::<rattler_conda_types::Version>().ok()?,
        build.parse().ok()?,
    );
    record.depends = p
        .dependencies
        .iter()
        .map(|(name, spec)| format!("{name} {spec}").trim().to_string())
        .collect();
    Some(record)
}

/// The locked packages as records, from what the lockfile itself says, reading no repodata
/// and no network. A package the lockfile says nothing of (an `@EXPLICIT` line) is named
/// from its file name, with no size or dependencies until its own `index.json` is read.
/// Sorted by dependency.
pub fn records_offline(locked: &[LockedPackage]) -> Result<Vec<RepoDataRecord>> {
    Ok(super::solve::sort_by_dependency(records_in_order(locked)?))
}

/// [`records_offline`], in the lockfile's order.
pub fn records_in_order(locked: &[LockedPackage]) -> Result<Vec<RepoDataRecord>> {
    let mut out = Vec::with_capacity(locked.len());
    for p in locked {
        let (channel, _, file) = split_url(&p.url).ok_or_else(|| Error::Channel {
            channel: p.url.to_string(),
            reason: "not a package URL of the form CHANNEL/SUBDIR/FILE".into(),
        })?;
        let identifier =
            DistArchiveIdentifier::try_from_filename(&file).ok_or_else(|| Error::Channel {
                channel: p.url.to_string(),
                reason: format!("`{file}` is not a conda package file name"),
            })?;
        let package_record = match &p.record {
            Some(r) => r.clone(),
            None => {
                let id = &identifier.identifier;
                PackageRecord::new(
                    PackageName::try_from(id.name.as_str()).map_err(|e| Error::Channel {
                        channel: p.url.to_string(),
                        reason: e.to_string(),
                    })?,
                    id.version
                        .parse::<rattler_conda_types::Version>()
                        .map_err(|e| Error::Channel {
                            channel: p.url.to_string(),
                            reason: e.to_string(),
                        })?,
                    id.build_string.parse().map_err(|e| Error::Channel {
                        channel: p.url.to_string(),
                        reason: format!("build string: {e}"),
                    })?,
                )
            }
        };
        let mut package_record = package_record;
        // The lockfile's hashes are what the package is fetched and checked by.
        let bad_hash = |kind: &str, hex: &str| Error::Channel {
            channel: p.url.to_string(),
            reason: format!("the lockfile's {kind} `{hex}` is not a {kind} in hex"),
        };
        if let Some(h) = &p.sha256 {
            package_record.sha256 = Some(
                rattler_digest::parse_digest_from_hex::<rattler_digest::Sha256>(h)
                    .ok_or_else(|| bad_hash("sha256", h))?,
            );
        }
        if let Some(h) = &p.md5 {
            package_record.md5 = Some(
                rattler_digest::parse_digest_from_hex::<rattler_digest::Md5>(h)
                    .ok_or_else(|| bad_hash("md5", h))?,
            );
        }
        out.push(RepoDataRecord {
            package_record,
            identifier,
            url: p.url.clone(),
            channel: Some(channel.to_string()),
        });
    }
    Ok(out)
}

/// True when [`write`] writes conda-lock's format to `path` (`.yml`/`.yaml`), which holds any
/// number of platforms.
pub fn writes_conda_lock(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// Checks that a lockfile may be written to `path`: nothing is there, or a regular file (a
/// directory, symlink or other file is refused and left as it is).
pub fn check_destination(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(lock_error(
            path,
            "it exists and is not a regular file (a directory, a symlink or another kind); \
             it is left as it is",
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("looking at", path)(e)),
    }
}

/// One platform's part of a lockfile [`write`] writes.
#[derive(Clone, Copy, Debug)]
pub struct Platform<'a> {
    /// The platform.
    pub subdir: Subdir,
    /// Its conda packages, in dependency order.
    pub records: &'a [RepoDataRecord],
    /// Its PyPI distributions.
    pub pypi: &'a [LockedPypi],
}

/// Writes each platform's records as a lockfile: conda-lock's format for `.yml`/`.yaml` (any
/// number of platforms), else conda's explicit format (one), atomically, where
/// [`check_destination`] allows. `header` (comment lines, each starting with `# `) opens the
/// file: what the image was built from beyond its packages, which every reader ignores
/// but conda-docker's.
pub fn write(path: &Path, platforms: &[Platform<'_>], header: &str) -> Result<()> {
    check_destination(path)?;
    let text = match platforms {
        _ if writes_conda_lock(path) => format!("{header}{}", conda_lock_text(platforms)?),
        [p] if p.pypi.is_empty() => explicit_text(p.records, p.subdir, header),
        [_] => {
            return Err(Error::Lock {
                path: path.to_path_buf(),
                reason: "conda's explicit format holds no PyPI packages: name a conda-lock \
                         file (`.yml`)"
                    .into(),
            });
        }
        _ => {
            return Err(Error::Lock {
                path: path.to_path_buf(),
                reason: "conda's explicit format holds one platform: name a conda-lock file \
                         (`.yml`) for several"
                    .into(),
            });
        }
    };
    crate::atomic::write(path, text.as_bytes()).map_err(super::Error::io("writing", path))?;
    Ok(())
}

/// conda's explicit format: one URL per package with its sha256, after `header` (comment
/// lines, each starting with `# `, which conda ignores).
pub fn explicit_text(records: &[RepoDataRecord], subdir: Subdir, header: &str) -> String {
    let mut text = format!(
        "# This file may be used to create an environment using:\n# $ conda create --name <env> --file <this file>\n# platform: {subdir}\n{header}@EXPLICIT\n"
    );
    for r in records {
        match r.package_record.sha256 {
            Some(h) => text.push_str(&format!("{}#sha256:{}\n", r.url, hex::encode(h))),
            None => text.push_str(&format!("{}\n", r.url)),
        }
    }
    text
}

fn conda_lock_text(platforms: &[Platform<'_>]) -> Result<String> {
    // The records' own (canonical) channels, in order of first use.
    let mut channels: Vec<String> = Vec::new();
    for p in platforms {
        for c in p.records.iter().filter_map(|r| r.channel.as_ref()) {
            if !channels.contains(c) {
                channels.push(c.clone());
            }
        }
    }
    use rattler_conda_lock::{
        Channel as LockChannel, Hashes, LockFile, Manager, Metadata, Package,
    };
    let pip = platforms.iter().flat_map(|p| {
        p.pypi.iter().map(move |w| Package {
            name: w.name.clone(),
            version: w.version.clone(),
            manager: Manager::Pip,
            platform: p.subdir.as_str().to_string(),
            dependencies: Default::default(),
            url: w.url.to_string(),
            hash: Hashes {
                md5: None,
                sha256: w.sha256.clone(),
            },
            source: None,
            build: None,
            category: "main".into(),
            optional: false,
        })
    });
    let package = platforms
        .iter()
        .flat_map(|p| p.records.iter().map(move |r| (p.subdir, r)))
        .map(|(subdir, r)| {
            let p = &r.package_record;
            let dependencies = p
                .depends
                .iter()
                .map(|d| match d.split_once(' ') {
                    Some((name, constraint)) => (name.to_string(), constraint.trim().to_string()),
                    None => (d.clone(), "*".to_string()),
                })
                .collect();
            Package {
                name: p.name.as_normalized().to_string(),
                version: p.version.to_string(),
                manager: Manager::Conda,
                platform: subdir.as_str().to_string(),
                dependencies,
                url: r.url.to_string(),
                hash: Hashes {
                    md5: p.md5.map(hex::encode),
                    sha256: p.sha256.map(hex::encode),
                },
                source: None,
                build: Some(p.build.to_string()),
                category: "main".into(),
                optional: false,
            }
        })
        .chain(pip)
        .collect();
    let lock = LockFile {
        metadata: Metadata {
            content_hash: platforms
                .iter()
                .map(|p| {
                    let subdir = p.subdir;
                    let content = explicit_text(p.records, subdir, "");
                    let hash = crate::image::Digest::of(content.as_bytes());
                    (subdir.as_str().to_string(), hash.hex().to_string())
                })
                .collect(),
            channels: channels
                .iter()
                .map(|c| LockChannel {
                    url: c.clone(),
                    used_env_vars: Vec::new(),
                })
                .collect(),
            platforms: platforms
                .iter()
                .map(|p| p.subdir.as_str().to_string())
                .collect(),
            ..Metadata::default()
        },
        package,
    };
    lock.to_yaml().map_err(|e| Error::Lock {
        path: "conda-lock.yml".into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_content() {
        assert_eq!(
            detect("# platform: linux-64\n@EXPLICIT\nhttps://x/linux-64/a-1-0.conda\n"),
            Some(LockFormat::Explicit)
        );
        assert_eq!(
            detect("version: 6\nenvironments:\n  default: {}\npackages: []\n"),
            Some(LockFormat::Pixi)
        );
        assert_eq!(
            detect("version: 1\nmetadata:\n  platforms: []\npackage: []\n"),
            Some(LockFormat::CondaLock)
        );
        assert_eq!(detect("name: x\ndependencies:\n- bzip2\n"), None);
    }

    #[test]
    fn explicit_lines_and_hashes() {
        let text = "@EXPLICIT\nhttps://c.org/cf/linux-64/bzip2-1.0.8-h4bc722e_7.conda#62ee74e96c5ebb0af99386de58cf9553\n\
                    https://c.org/cf/noarch/tzdata-2025a-h78e105d_0.conda#sha256:ABC\n";
        let p = read_explicit(Path::new("x.txt"), text, Subdir::Linux64).unwrap();
        assert_eq!(
            p[0].md5.as_deref(),
            Some("62ee74e96c5ebb0af99386de58cf9553")
        );
        assert_eq!(p[1].sha256.as_deref(), Some("abc"));
        let (channel, subdir, file) = split_url(&p[0].url).unwrap();
        assert_eq!(
            (channel.as_str(), subdir.as_str(), file.as_str()),
            (
                "https://c.org/cf/",
                "linux-64",
                "bzip2-1.0.8-h4bc722e_7.conda"
            )
        );
        let e = read_explicit(
            Path::new("x.txt"),
            "# platform: osx-64\n@EXPLICIT\n",
            Subdir::Linux64,
        )
        .unwrap_err();
        assert!(e.to_string().contains("osx-64"), "{e}");
    }
}
