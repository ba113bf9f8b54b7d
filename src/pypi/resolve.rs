//! Resolves `pip:` requirements to wheels with pubgrub, over an [`Index`].
//!
//! The packages pubgrub sees are distribution names and `name[extra]` (an extra depends on its
//! base at the same version, as uv and pip model it); the versions of a name are those with a
//! wheel compatible with the [`Target`] (CPython's tags for its version, manylinux for its
//! glibc, never musllinux) whose `requires-python` the target's python meets; a version's
//! dependencies are its `METADATA`'s `Requires-Dist`, markers evaluated for the target.
//! Distributions the conda packages provide are fixed at their version.
//!
//! pubgrub's solver is synchronous and asks for versions and dependencies one package at a
//! time, learning what to fetch as it goes. It runs on a blocking thread
//! (`spawn_blocking`), and the provider fetches project pages and metadata through the
//! runtime's [`Handle`](tokio::runtime::Handle) (`block_on`), so an index is read only as far
//! as the resolution needs; when a version's dependencies are known, their project pages are
//! fetched together before pubgrub asks for them one by one.
//!
//! Cancellation: drop the future [`resolve`] returns (a `select!` with the build's cancel
//! token): the solver thread stops at its next step and abandons its fetch.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{
    ExtraName, MarkerEnvironment, MarkerEnvironmentBuilder, PackageName, VersionOrUrl,
};
use pubgrub::{
    Dependencies, DependencyProvider, PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};
use tokio_util::sync::CancellationToken;

use super::index::{self, DistFile, Index, Project};
use super::normalize_name;
use super::provides::Provided;
use super::requirements::{Origin, Requirements};
use super::wheel::WheelName;

/// The CPU a target runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `x86_64` (`linux-64`).
    X86_64,
    /// `aarch64` (`linux-aarch64`).
    Aarch64,
}

impl Arch {
    /// The name in platform tags and `platform_machine`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }
}

/// The environment wheels are chosen for: CPython `python` on Linux with `glibc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The python's version, `(3, 11, 7)`.
    pub python: (u32, u32, u32),
    /// The glibc of the base image (the conda solve's `__glibc`), `(2, 17)`.
    pub glibc: (u32, u32),
    /// The CPU.
    pub arch: Arch,
}

impl Target {
    /// The platform tags, most specific first: `manylinux_2_N_ARCH` from the target's glibc
    /// down to the oldest (2.5 on x86_64, 2.17 elsewhere), with the `manylinux2014` (2.17),
    /// `manylinux2010` (2.12) and `manylinux1` (2.5) aliases where they exist. `linux_ARCH`
    /// wheels are never taken: they hold no promise about the libraries they need, and musllinux
    /// ones do not run on glibc.
    pub fn platforms(&self) -> Vec<String> {
        let arch = self.arch.as_str();
        let oldest = match self.arch {
            Arch::X86_64 => 5,
            Arch::Aarch64 => 17,
        };
        let mut out = Vec::new();
        if self.glibc.0 != 2 {
            return out;
        }
        for minor in (oldest..=self.glibc.1).rev() {
            out.push(format!("manylinux_2_{minor}_{arch}"));
            match (minor, self.arch) {
                (17, _) => out.push(format!("manylinux2014_{arch}")),
                (12, Arch::X86_64) => out.push(format!("manylinux2010_{arch}")),
                (5, Arch::X86_64) => out.push(format!("manylinux1_{arch}")),
                _ => {}
            }
        }
        out
    }

    /// The `python-abi-platform` tags a wheel may carry to be installed, most preferred first,
    /// in the order `packaging.tags.sys_tags()` gives them for CPython.
    pub fn tags(&self) -> Vec<String> {
        let (x, y, _) = self.python;
        let interp = format!("cp{x}{y}");
        let platforms = self.platforms();
        let mut out = Vec::new();
        let mut each = |py: &str, abi: &str, plats: &[String]| {
            for p in plats {
                out.push(format!("{py}-{abi}-{p}"));
            }
        };
        each(&interp, &interp, &platforms);
        if x == 3 && y >= 2 {
            each(&interp, "abi3", &platforms);
        }
        each(&interp, "none", &platforms);
        if x == 3 {
            for z in (2..y).rev() {
                each(&format!("cp3{z}"), "abi3", &platforms);
            }
        }
        let mut py_versions = vec![format!("py{x}{y}"), format!("py{x}")];
        py_versions.extend((0..y).rev().map(|z| format!("py{x}{z}")));
        for v in &py_versions {
            each(v, "none", &platforms);
        }
        let any = ["any".to_string()];
        each(&interp, "none", &any);
        for v in &py_versions {
            each(v, "none", &any);
        }
        out
    }

    /// The marker environment of the target (PEP 508).
    pub fn markers(&self) -> MarkerEnvironment {
        let (x, y, z) = self.python;
        let full = format!("{x}.{y}.{z}");
        let short = format!("{x}.{y}");
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: self.arch.as_str(),
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: &short,
            sys_platform: "linux",
        })
        .unwrap_or_else(|_| unreachable!("numbers always parse as versions"))
    }

    fn python_version(&self) -> Version {
        let (x, y, z) = self.python;
        Version::new([u64::from(x), u64::from(y), u64::from(z)])
    }

    fn describe(&self) -> String {
        let (x, y, z) = self.python;
        format!(
            "CPython {x}.{y}.{z} on Linux {} with glibc {}.{}",
            self.arch.as_str(),
            self.glibc.0,
            self.glibc.1
        )
    }
}

/// A wheel the resolution chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedWheel {
    /// The distribution's name, normalised (PEP 503).
    pub name: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub filename: String,
    /// Where it is downloaded from (`https://...` or `file://...`).
    pub url: url::Url,
    /// The wheel's sha256 (hex), from the index (or computed, for an index that gives none).
    pub sha256: String,
    /// A requirement names it (pip writes `REQUESTED`), rather than only a dependency.
    pub requested: bool,
}

/// Why the requirements could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index failed (unreachable, a bad page, a bad hash, ...).
    #[error(transparent)]
    Index(#[from] index::Error),
    /// A requirement that does not parse.
    #[error("{origin}: `{requirement}`: {reason}")]
    Requirement {
        /// As written.
        requirement: String,
        /// Where.
        origin: Origin,
        /// Why.
        reason: String,
    },
    /// A `Requires-Dist` or `Requires-Python` of a wheel's `METADATA` that does not parse.
    #[error("the METADATA of `{wheel}`: {reason}")]
    Metadata {
        /// The wheel.
        wheel: String,
        /// What is wrong.
        reason: String,
    },
    /// A distribution the resolution needs has only source distributions.
    #[error(
        "`{name}` has only source distributions (sdists) on {searched}: conda-docker installs \
         wheels only and does not build sdists (building runs the project's code on this \
         machine); use a version that has a wheel, or get it from conda\n\n{explanation}"
    )]
    SdistOnly {
        /// The distribution.
        name: String,
        /// The indexes searched.
        searched: String,
        /// The resolver's explanation.
        explanation: String,
    },
    /// A distribution has wheels, but none for the target.
    #[error(
        "`{name}` has no wheel for {target} ({files}); conda-docker installs wheels only\n\n{explanation}"
    )]
    NoWheel {
        /// The distribution.
        name: String,
        /// The target, described.
        target: String,
        /// What the index has instead.
        files: String,
        /// The resolver's explanation.
        explanation: String,
    },
    /// A distribution no index lists.
    #[error("`{name}` is not on any index (searched {searched})\n\n{explanation}")]
    NotFound {
        /// The distribution.
        name: String,
        /// The indexes searched.
        searched: String,
        /// The resolver's explanation.
        explanation: String,
    },
    /// A requirement needs another version of a distribution than the conda package that
    /// provides it.
    #[error(
        "`{}` ({}) needs another version of `{}` than {}, which the conda package `{}` \
         provides; conda-docker does not let pip replace a conda package's files: change the \
         requirement or the conda package\n\n{}",
        .0.requirement, .0.by, .0.name, .0.version, .0.package, .0.explanation
    )]
    Provided(Box<ProvidedConflict>),
    /// No set of versions satisfies the requirements.
    #[error("the pip requirements cannot be satisfied:\n{explanation}")]
    Unsatisfiable {
        /// pubgrub's explanation.
        explanation: String,
    },
    /// The resolution was cancelled (its future dropped): the one [`crate::Cancelled`] as its
    /// source.
    #[error("the resolution was cancelled")]
    Cancelled(#[source] crate::Cancelled),
    /// The solver thread failed.
    #[error("the resolver stopped: {0}")]
    Solver(String),
}

/// A requirement against a version that conda provides ([`Error::Provided`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidedConflict {
    /// The requirement.
    pub requirement: String,
    /// Who requires it (`asked at environment.yml:3`, `required by python-dotenv 1.2.4`).
    pub by: String,
    /// The distribution.
    pub name: String,
    /// The version conda provides.
    pub version: String,
    /// The conda package.
    pub package: String,
    /// The resolver's explanation.
    pub explanation: String,
}

/// A pubgrub package.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Pkg {
    /// What the requirements ask for.
    Root,
    /// A distribution.
    Dist(PackageName),
    /// A distribution with an extra.
    Extra(PackageName, ExtraName),
}

impl std::fmt::Display for Pkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root => write!(f, "the pip requirements"),
            Self::Dist(n) => write!(f, "{n}"),
            Self::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

impl Pkg {
    fn name(&self) -> Option<&PackageName> {
        match self {
            Self::Root => None,
            Self::Dist(n) | Self::Extra(n, _) => Some(n),
        }
    }
}

type Vs = Ranges<Version>;

/// The installable versions of a name.
#[derive(Debug, Default)]
struct Candidates {
    /// Version -> the best wheel of it (yanked only when no unyanked one is compatible).
    versions: BTreeMap<Version, (DistFile, usize)>,
    wheels: usize,
    sdists: usize,
    /// What was turned down, for messages.
    refused: Vec<String>,
    searched: Vec<String>,
}

/// A version's dependencies as `METADATA` gives them.
#[derive(Debug)]
struct Metadata {
    requires_dist: Vec<pep508_rs::Requirement>,
    requires_python: Option<VersionSpecifiers>,
}

/// Why a name could not be installed, for the error after pubgrub gives up.
#[derive(Clone, Debug)]
enum Note {
    SdistOnly { searched: String },
    NoWheel { files: String },
    NotFound { searched: String },
    Provided { requirement: String, by: String },
}

struct Provider<'a> {
    index: &'a Index,
    handle: tokio::runtime::Handle,
    token: CancellationToken,
    target: Target,
    tags: HashMap<String, usize>,
    markers: MarkerEnvironment,
    python: Version,
    provided: &'a BTreeMap<String, Provided>,
    pre: bool,
    root: Vec<(Pkg, Vs)>,
    pre_named: RefCell<HashSet<String>>,
    candidates: RefCell<HashMap<String, Arc<Candidates>>>,
    metadata: RefCell<HashMap<(String, Version), Arc<Metadata>>>,
    notes: RefCell<BTreeMap<String, Note>>,
    edges: RefCell<HashMap<(Pkg, Version), Vec<String>>>,
}

/// The wheel's priority among the target's tags (lower is better), or `None` when no tag of
/// it fits.
fn wheel_priority(name: &WheelName, tags: &HashMap<String, usize>) -> Option<usize> {
    let mut best: Option<usize> = None;
    for py in name.python.split('.') {
        for abi in name.abi.split('.') {
            for plat in name.platform.split('.') {
                if let Some(&p) = tags.get(&format!("{py}-{abi}-{plat}")) {
                    best = Some(best.map_or(p, |b| b.min(p)));
                }
            }
        }
    }
    best
}

impl Provider<'_> {
    /// Runs `future` on the runtime, stopping when the resolution is cancelled.
    fn block<T>(&self, future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let token = self.token.clone();
        self.handle.block_on(async move {
            tokio::select! {
                r = future => r,
                () = token.cancelled() => Err(Error::Cancelled(crate::Cancelled)),
            }
        })
    }

    fn project(&self, name: &str) -> Result<Arc<Project>, Error> {
        let index = self.index.clone();
        let name = name.to_string();
        self.block(async move { Ok(index.project(&name).await?) })
    }

    /// The compatible versions of `name`.
    fn candidates(&self, name: &str) -> Result<Arc<Candidates>, Error> {
        if let Some(c) = self.candidates.borrow().get(name) {
            return Ok(c.clone());
        }
        let project = self.project(name)?;
        let mut c = Candidates {
            searched: project.searched.clone(),
            ..Candidates::default()
        };
        for file in &project.files {
            if !file.filename.ends_with(".whl") {
                if index::sdist_stem(&file.filename).is_some() {
                    c.sdists += 1;
                }
                continue;
            }
            let Ok(parsed) = WheelName::parse(&file.filename) else {
                continue;
            };
            if normalize_name(&parsed.name) != name {
                continue;
            }
            c.wheels += 1;
            let Ok(version) = Version::from_str(&parsed.version) else {
                continue;
            };
            let Some(priority) = wheel_priority(&parsed, &self.tags) else {
                c.refused.push(file.filename.clone());
                continue;
            };
            if let Some(rp) = &file.requires_python {
                match VersionSpecifiers::from_str(rp) {
                    Ok(spec) if spec.contains(&self.python) => {}
                    _ => {
                        c.refused
                            .push(format!("{} (requires-python {rp})", file.filename));
                        continue;
                    }
                }
            }
            // A better tag wins; an unyanked file wins over a yanked one whatever its tag.
            let rank = priority + if file.yanked { 1 << 40 } else { 0 };
            match c.versions.get(&version) {
                Some((_, r)) if *r <= rank => {}
                _ => {
                    c.versions.insert(version, (file.clone(), rank));
                }
            }
        }
        let c = Arc::new(c);
        self.candidates
            .borrow_mut()
            .insert(name.to_string(), c.clone());
        Ok(c)
    }

    fn note_unavailable(&self, name: &str, c: &Candidates) {
        let searched = c.searched.join(", ");
        let note = if c.wheels == 0 && c.sdists > 0 {
            Note::SdistOnly { searched }
        } else if c.wheels == 0 {
            Note::NotFound { searched }
        } else if c.versions.is_empty() {
            let mut shown: Vec<String> = c.refused.iter().take(5).cloned().collect();
            if c.refused.len() > 5 {
                shown.push(format!("and {} more", c.refused.len() - 5));
            }
            Note::NoWheel {
                files: format!("it has {}", shown.join(", ")),
            }
        } else {
            return;
        };
        self.notes
            .borrow_mut()
            .entry(name.to_string())
            .or_insert(note);
    }

    fn metadata(
        &self,
        name: &str,
        version: &Version,
        file: &DistFile,
    ) -> Result<Arc<Metadata>, Error> {
        let key = (name.to_string(), version.clone());
        if let Some(m) = self.metadata.borrow().get(&key) {
            return Ok(m.clone());
        }
        let index = self.index.clone();
        let owned = file.clone();
        let text = self.block(async move { Ok(index.metadata(&owned).await?) })?;
        let bad = |reason: String| Error::Metadata {
            wheel: file.filename.clone(),
            reason,
        };
        let mut requires_dist = Vec::new();
        let mut requires_python = None;
        for (key, value) in super::metadata::headers(&text) {
            if key.eq_ignore_ascii_case("Requires-Dist") {
                let req = pep508_rs::Requirement::from_str(&value)
                    .map_err(|e| bad(format!("`Requires-Dist: {value}`: {e}")))?;
                requires_dist.push(req);
            } else if key.eq_ignore_ascii_case("Requires-Python") && !value.trim().is_empty() {
                requires_python = Some(
                    VersionSpecifiers::from_str(&value)
                        .map_err(|e| bad(format!("`Requires-Python: {value}`: {e}")))?,
                );
            }
        }
        let m = Arc::new(Metadata {
            requires_dist,
            requires_python,
        });
        self.metadata.borrow_mut().insert(key, m.clone());
        Ok(m)
    }

    /// `req`'s packages and ranges, added to `deps`; `by` says who asks, for messages.
    fn add_requirement(
        &self,
        req: &pep508_rs::Requirement,
        by: &str,
        deps: &mut BTreeMap<Pkg, Vs>,
    ) -> Result<(), String> {
        let range: Vs = match &req.version_or_url {
            None => Ranges::full(),
            Some(VersionOrUrl::VersionSpecifier(spec)) => {
                if spec.iter().any(|s| s.any_prerelease()) {
                    self.pre_named.borrow_mut().insert(req.name.to_string());
                }
                Vs::from(spec.clone())
            }
            Some(VersionOrUrl::Url(url)) => {
                return Err(format!(
                    "a requirement by URL (`{url}`) is not resolved from an index; conda-docker \
                     does not install direct URL requirements yet: name the version instead"
                ));
            }
        };
        let name = req.name.to_string();
        if let Some(p) = self.provided.get(&name)
            && let Ok(v) = Version::from_str(&p.version)
            && !range.contains(&v)
        {
            self.notes
                .borrow_mut()
                .entry(name.clone())
                .or_insert(Note::Provided {
                    requirement: req.to_string(),
                    by: by.to_string(),
                });
        }
        let mut add = |pkg: Pkg| {
            let r = match deps.get(&pkg) {
                Some(old) => old.intersection(&range),
                None => range.clone(),
            };
            deps.insert(pkg, r);
        };
        add(Pkg::Dist(req.name.clone()));
        for extra in &req.extras {
            add(Pkg::Extra(req.name.clone(), extra.clone()));
        }
        Ok(())
    }

    /// [`Self::prefetch`] of the projects `deps` name.
    fn prefetch_deps(&self, deps: &BTreeMap<Pkg, Vs>) {
        let names = deps
            .keys()
            .filter_map(|p| p.name().map(|n| n.to_string()))
            .collect();
        self.prefetch(names);
    }

    /// Fetches the project pages of `names` together, for pubgrub to find them fetched; a
    /// failure is left for the fetch pubgrub makes.
    fn prefetch(&self, names: Vec<String>) {
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !self.provided.contains_key(n) && !self.candidates.borrow().contains_key(n))
            .collect();
        if names.len() < 2 {
            return;
        }
        let index = self.index.clone();
        let _ = self.block(async move {
            let fetches = names.iter().map(|n| index.project(n));
            futures::future::join_all(fetches).await;
            Ok(())
        });
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Vs;
    type Priority = (u32, std::cmp::Reverse<usize>);
    type M = String;
    type Err = Error;

    fn prioritize(
        &self,
        package: &Pkg,
        range: &Vs,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        // Packages in more conflicts first, then those with fewer versions in range (as a
        // proxy: narrower ranges are simpler), then breadth-first.
        let narrow = if range.as_singleton().is_some() { 0 } else { 1 };
        let _ = package;
        (stats.conflict_count(), std::cmp::Reverse(narrow))
    }

    fn choose_version(&self, package: &Pkg, range: &Vs) -> Result<Option<Version>, Error> {
        let Some(name) = package.name() else {
            return Ok(Some(Version::new([0])));
        };
        let name = name.to_string();
        if let Some(p) = self.provided.get(&name) {
            let v = Version::from_str(&p.version).map_err(|e| Error::Solver(format!(
                "the conda package `{}` provides `{name}` {}, which is not a PEP 440 version: {e}",
                p.package, p.version
            )))?;
            return Ok(range.contains(&v).then_some(v));
        }
        let c = self.candidates(&name)?;
        if c.versions.is_empty() {
            self.note_unavailable(&name, &c);
            return Ok(None);
        }
        let pinned = range.as_singleton();
        let mut fitting = c
            .versions
            .iter()
            .rev()
            .filter(|(v, (file, _))| range.contains(*v) && (!file.yanked || pinned == Some(*v)))
            .map(|(v, _)| v);
        if self.pre {
            return Ok(fitting.next().cloned());
        }
        let fitting: Vec<&Version> = fitting.collect();
        if let Some(v) = fitting.iter().find(|v| !v.any_prerelease()) {
            return Ok(Some((*v).clone()));
        }
        if self.pre_named.borrow().contains(&name) {
            return Ok(fitting.first().map(|v| (*v).clone()));
        }
        Ok(None)
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Vs, String>, Error> {
        let mut deps: BTreeMap<Pkg, Vs> = BTreeMap::new();
        let (name, extra) = match package {
            Pkg::Root => {
                deps.extend(self.root.iter().cloned());
                self.prefetch_deps(&deps);
                self.record(package, version, &deps);
                return Ok(Dependencies::Available(deps.into_iter().collect()));
            }
            Pkg::Dist(n) => (n, None),
            Pkg::Extra(n, e) => {
                deps.insert(Pkg::Dist(n.clone()), Ranges::singleton(version.clone()));
                (n, Some(e))
            }
        };
        let key = name.to_string();
        let provided = self.provided.contains_key(&key);
        if provided && extra.is_none() {
            // Conda installs it, and its dependencies are conda's.
            return Ok(Dependencies::Available(Default::default()));
        }
        let c = self.candidates(&key)?;
        let Some((file, _)) = c.versions.get(version) else {
            // An extra of a conda-provided distribution the index does not have: nothing more.
            return Ok(Dependencies::Available(deps.into_iter().collect()));
        };
        let meta = self.metadata(&key, version, file)?;
        if let Some(rp) = &meta.requires_python
            && !rp.contains(&self.python)
        {
            return Ok(Dependencies::Unavailable(format!(
                "it requires Python {rp} (its METADATA)"
            )));
        }
        let extras: Vec<ExtraName> = extra.into_iter().cloned().collect();
        let by = format!("required by {package} {version}");
        for req in &meta.requires_dist {
            if !req.marker.evaluate(&self.markers, &extras) {
                continue;
            }
            // An extra's own requirements only; the base's come through the base.
            if extra.is_some() && req.marker.evaluate(&self.markers, &[]) {
                continue;
            }
            if req.name == *name && req.extras.is_empty() {
                continue;
            }
            if let Err(reason) = self.add_requirement(req, &by, &mut deps) {
                return Ok(Dependencies::Unavailable(reason));
            }
        }
        if !provided {
            self.prefetch_deps(&deps);
        }
        self.record(package, version, &deps);
        Ok(Dependencies::Available(deps.into_iter().collect()))
    }

    fn should_cancel(&self) -> Result<(), Error> {
        if self.token.is_cancelled() {
            Err(Error::Cancelled(crate::Cancelled))
        } else {
            Ok(())
        }
    }
}

impl Provider<'_> {
    fn record(&self, package: &Pkg, version: &Version, deps: &BTreeMap<Pkg, Vs>) {
        let names = deps
            .keys()
            .filter_map(|p| p.name().map(|n| n.to_string()))
            .collect();
        self.edges
            .borrow_mut()
            .insert((package.clone(), version.clone()), names);
    }
}

/// Resolves `requirements` for `target` over `index`: the wheels to install, dependencies
/// first, then by name. Distributions in `provided` (by normalised name, from
/// [`super::provides::provided`]) are fixed at conda's version and never returned.
pub async fn resolve(
    requirements: &Requirements,
    target: &Target,
    provided: &BTreeMap<String, Provided>,
    index: &Index,
) -> Result<Vec<ResolvedWheel>, Error> {
    let markers = target.markers();
    // The root's requirements, markers evaluated (no extras at the root).
    let mut roots: Vec<(pep508_rs::Requirement, Origin)> = Vec::new();
    for r in &requirements.requirements {
        let parsed = pep508_rs::Requirement::from_str(&r.text).map_err(|e| Error::Requirement {
            requirement: r.text.clone(),
            origin: r.origin.clone(),
            reason: e.message.to_string(),
        })?;
        if parsed.marker.evaluate(&markers, &[]) {
            roots.push((parsed, r.origin.clone()));
        }
    }
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let requested: BTreeSet<String> = roots.iter().map(|(r, _)| r.name.to_string()).collect();
    let token = CancellationToken::new();
    let _stop = token.clone().drop_guard();
    let handle = tokio::runtime::Handle::current();
    let index = index.clone();
    let provided = provided.clone();
    let target = *target;
    let pre = requirements.pre;
    let run = move || -> Result<Vec<ResolvedWheel>, Error> {
        let tags = target
            .tags()
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect();
        let mut provider = Provider {
            index: &index,
            handle,
            token,
            target,
            tags,
            markers,
            python: target.python_version(),
            provided: &provided,
            pre,
            root: Vec::new(),
            pre_named: RefCell::default(),
            candidates: RefCell::default(),
            metadata: RefCell::default(),
            notes: RefCell::default(),
            edges: RefCell::default(),
        };
        let mut root = BTreeMap::new();
        for (req, origin) in &roots {
            provider
                .add_requirement(req, &format!("asked at {origin}"), &mut root)
                .map_err(|reason| Error::Requirement {
                    requirement: req.to_string(),
                    origin: origin.clone(),
                    reason,
                })?;
        }
        provider.root = root.into_iter().collect();
        let solution = match pubgrub::resolve(&provider, Pkg::Root, Version::new([0])) {
            Ok(s) => s,
            Err(PubGrubError::NoSolution(tree)) => {
                // The root's version is a placeholder: not shown.
                let explanation = pubgrub::DefaultStringReporter::report(&tree)
                    .replace(&format!("{} 0", Pkg::Root), &Pkg::Root.to_string());
                return Err(explain(&provider, explanation));
            }
            Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
            | Err(PubGrubError::ErrorChoosingVersion { source, .. })
            | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
        };
        order(&provider, &solution, &requested)
    };
    tokio::task::spawn_blocking(run)
        .await
        .map_err(|e| Error::Solver(e.to_string()))?
}

/// The error for a failed resolution: the note of a name the explanation involves, else the
/// explanation alone.
fn explain(provider: &Provider<'_>, explanation: String) -> Error {
    let involved = |name: &str| {
        explanation
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .any(|w| w == name)
    };
    let notes = provider.notes.borrow();
    // A conflict with conda first: it is the cause the user can act on.
    let mut ordered: Vec<(&String, &Note)> = notes.iter().collect();
    ordered.sort_by_key(|(_, n)| !matches!(n, Note::Provided { .. }));
    for (name, note) in ordered {
        if !involved(name) {
            continue;
        }
        let explanation = explanation.clone();
        return match note.clone() {
            Note::Provided { requirement, by } => {
                let p = &provider.provided[name];
                Error::Provided(Box::new(ProvidedConflict {
                    requirement,
                    by,
                    name: name.clone(),
                    version: p.version.clone(),
                    package: p.package.clone(),
                    explanation,
                }))
            }
            Note::SdistOnly { searched } => Error::SdistOnly {
                name: name.clone(),
                searched,
                explanation,
            },
            Note::NoWheel { files } => Error::NoWheel {
                name: name.clone(),
                target: provider.target.describe(),
                files,
                explanation,
            },
            Note::NotFound { searched } => Error::NotFound {
                name: name.clone(),
                searched,
                explanation,
            },
        };
    }
    Error::Unsatisfiable { explanation }
}

/// The chosen wheels, dependencies first (a cycle broken at its first name), then by name.
fn order(
    provider: &Provider<'_>,
    solution: &pubgrub::SelectedDependencies<Provider<'_>>,
    requested: &BTreeSet<String>,
) -> Result<Vec<ResolvedWheel>, Error> {
    let mut wheels: BTreeMap<String, ResolvedWheel> = BTreeMap::new();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (pkg, version) in solution {
        let Some(name) = pkg.name().map(|n| n.to_string()) else {
            continue;
        };
        if provider.provided.contains_key(&name) {
            continue;
        }
        let edges = provider.edges.borrow();
        let entry = deps.entry(name.clone()).or_default();
        for d in edges
            .get(&(pkg.clone(), version.clone()))
            .into_iter()
            .flatten()
        {
            if *d != name && !provider.provided.contains_key(d) {
                entry.insert(d.clone());
            }
        }
        if matches!(pkg, Pkg::Dist(_)) {
            let c = provider.candidates(&name)?;
            let (file, _) = c
                .versions
                .get(version)
                .ok_or_else(|| Error::Solver(format!("no wheel of {name} {version} was chosen")))?;
            let sha256 = match &file.sha256 {
                Some(h) => h.to_ascii_lowercase(),
                None => {
                    // An index that gives no hash: the wheel's own, from the cache.
                    let index = provider.index.clone();
                    let f = file.clone();
                    let path = provider.block(async move { Ok(index.fetch_listed(&f).await?) })?;
                    path.1
                }
            };
            wheels.insert(
                name.clone(),
                ResolvedWheel {
                    name: name.clone(),
                    version: version.to_string(),
                    filename: file.filename.clone(),
                    url: file.url.clone(),
                    sha256,
                    requested: requested.contains(&name),
                },
            );
        }
    }
    let mut out = Vec::with_capacity(wheels.len());
    let mut remaining: BTreeMap<String, BTreeSet<String>> = deps
        .into_iter()
        .filter(|(n, _)| wheels.contains_key(n))
        .map(|(n, d)| {
            (
                n,
                d.into_iter().filter(|x| wheels.contains_key(x)).collect(),
            )
        })
        .collect();
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .find(|(_, d)| d.is_empty())
            .or_else(|| remaining.iter().next())
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        remaining.remove(&next);
        for d in remaining.values_mut() {
            d.remove(&next);
        }
        if let Some(w) = wheels.remove(&next) {
            out.push(w);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
