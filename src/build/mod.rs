//! The builder that joins both sides: specs and a base image in, an image out.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conda_docker::build::Error> {
//! use conda_docker::build::Builder;
//! use conda_docker::input::Input;
//! let built = Builder::new()
//!     .with_channels(["conda-forge"])
//!     .with_base("docker-archive:base.tar")
//!     .build(&Input::specs(["bzip2"]))
//!     .await?;
//! println!("{} layers", built.image().layers().len());
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rattler_conda_types::{GenericVirtualPackage, RepoDataRecord, Subdir};

use futures::{StreamExt, TryStreamExt};

use crate::conda::channel::Sources;
use crate::conda::contents::{ContentsCache, PackageContents};
use crate::conda::fetch::Fetcher;
use crate::conda::place::{self, Clobber, Trim};
use crate::conda::plan::{LayerGroup, LayerPlan, LayeringStrategy, MAX_LAYERS, plan_layers};
use crate::conda::{plan, record, solve};
use crate::image::config::rfc3339;
use crate::image::layer::EntriesLayer;
use crate::image::layer_tar::{Entry, EntryData, Ownership};
use crate::image::{Cancel, Digest, History, Image, Layer, Platform};
use crate::input::{Input, Packages};
use crate::platform::oci_platform;
use crate::store::{BlobCache, KeyedLayer, Store};
use compose::{LayerSettings, Member};

pub mod compose;
pub mod job;
pub mod pypi;
use crate::reporter::{NoReporter, Reporter, Stage};
use crate::settings::ImageSettings;
use crate::transport::registry::RegistryOptions;
use crate::transport::{self, Location, LocationError, Remote, Session};
pub use job::{Job, Outcome};

/// What can go wrong building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No package specs were given.
    #[error(
        "no packages to install: give at least one package spec, e.g. `conda-docker build bzip2`"
    )]
    NoSpecs,
    /// The base image location does not parse.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Reading the base image failed.
    #[error("reading base image `{base}`")]
    Base {
        /// The base as given.
        base: String,
        /// The cause.
        #[source]
        source: Box<crate::transport::Error>,
    },
    /// The base image is for another platform.
    #[error(
        "base image `{base}` is for {found}, but --platform {subdir} needs {wanted}: pick a base for {wanted}"
    )]
    BasePlatform {
        /// The base as given.
        base: String,
        /// The base's platform (`linux/arm64/v8`).
        found: String,
        /// The platform the packages need.
        wanted: String,
        /// The conda subdir asked for.
        subdir: String,
    },
    /// Resolving or installing packages failed.
    #[error(transparent)]
    Conda(#[from] crate::conda::Error),
    /// An image setting is invalid.
    #[error(transparent)]
    Settings(#[from] crate::settings::Error),
    /// The user to add clashes with the base's users.
    #[error("--user: {0}")]
    User(String),
    /// The PyPI distributions cannot be installed.
    #[error(transparent)]
    Pypi(Box<pypi::PypiError>),
    /// What to build cannot be read.
    #[error(transparent)]
    Input(#[from] crate::input::Error),
    /// The default image name (after the environment's name) is no image reference.
    #[error(
        "the environment's name gives the image name `{name}`, which is not valid: name the image (`--image`)"
    )]
    ImageName {
        /// The name made.
        name: String,
        /// Why it is invalid.
        #[source]
        source: crate::image::reference::InvalidReference,
    },
    /// The layer budget leaves no room for the environment.
    #[error(
        "--max-layers {0}: an image needs at least 2 layers (the packages and the environment files)"
    )]
    MaxLayers(usize),
    /// Several platforms were to go into a lockfile in conda's explicit format.
    #[error(
        "--lock-output {}: conda's explicit format holds one platform; name a conda-lock file \
         (`.yml`) for several",
        path.display()
    )]
    LockOnePlatform {
        /// The lockfile.
        path: PathBuf,
    },
    /// PyPI distributions were to go into a lockfile in conda's explicit format.
    #[error(
        "--lock-output {}: conda's explicit format holds no PyPI packages; name a conda-lock \
         file (`.yml`)",
        path.display()
    )]
    LockNoPypi {
        /// The lockfile.
        path: PathBuf,
    },
    /// The SBOM directory cannot be written.
    #[error("--sbom-dir {}", path.display())]
    SbomDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An output cannot be written.
    #[error(transparent)]
    Output(Box<crate::transport::OutputError>),
    /// Building the layers failed, or the build was cancelled
    /// ([`crate::image::Error::Cancelled`]: the one way a cancellation is told).
    #[error(transparent)]
    Image(#[from] crate::image::Error),
}

impl From<crate::transport::OutputError> for Error {
    fn from(e: crate::transport::OutputError) -> Self {
        Self::Output(Box::new(e))
    }
}

impl From<pypi::PypiError> for Error {
    fn from(e: pypi::PypiError) -> Self {
        Error::Pypi(Box::new(e))
    }
}

impl Error {
    /// The build was cancelled.
    fn cancelled() -> Self {
        Self::Image(crate::image::Error::Cancelled)
    }

    /// True when the build stopped because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Image(e) => matches!(e, crate::image::Error::Cancelled),
            Self::Base { source, .. } => source.is_cancelled(),
            Self::Output(e) => matches!(e.image_error(), Some(crate::image::Error::Cancelled)),
            _ => false,
        }
    }
}

/// Where the image records the packages it holds (conda's explicit format), in the prefix.
pub const PACKAGE_LIST: &str = "conda-meta/explicit.txt";

/// The label holding the digest of [`PACKAGE_LIST`].
pub const PACKAGES_LABEL: &str = "org.conda-docker.packages.digest";

/// The glibc version assumed for the image when nothing says otherwise (conda-forge's minimum).
pub const DEFAULT_GLIBC: &str = "2.17";

/// Builds conda environment images: holds how to build (every setting has a default; see each
/// `with_` method) and takes what to build, an [`Input`], in [`Builder::build`].
#[must_use]
#[derive(Clone)]
pub struct Builder {
    channels: Vec<String>,
    subdir: Subdir,
    base: String,
    target_prefix: PathBuf,
    strategy: LayeringStrategy,
    max_layers: usize,
    trim: Trim,
    cache_dir: Option<PathBuf>,
    source_date_epoch: Option<u64>,
    cancel: Cancel,
    reporter: Arc<dyn Reporter>,
    base_options: Option<RegistryOptions>,
    settings: ImageSettings,
    virtual_packages: BTreeMap<String, String>,
    sources: Sources,
    sbom: bool,
    allow_unhashed_pypi: bool,
    pypi_locations: crate::pypi::index::Locations,
    pypi_http: crate::pypi::index::HttpOptions,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with every setting at its default.
    pub fn new() -> Self {
        Self {
            channels: Vec::new(),
            subdir: Subdir::Linux64,
            base: "scratch".into(),
            target_prefix: PathBuf::from("/opt/conda"),
            strategy: LayeringStrategy::Auto,
            max_layers: MAX_LAYERS,
            trim: Trim::default(),
            cache_dir: None,
            source_date_epoch: None,
            cancel: Cancel::new(),
            reporter: Arc::new(NoReporter),
            base_options: None,
            settings: ImageSettings::default(),
            virtual_packages: BTreeMap::new(),
            sources: Sources::new(),
            sbom: true,
            allow_unhashed_pypi: false,
            pypi_locations: Default::default(),
            pypi_http: Default::default(),
        }
    }

    /// Where channels' packages are fetched from (mirrors, names of local channels). By
    /// default, every channel from where it is, a local one named by its directory.
    pub fn with_sources(mut self, sources: Sources) -> Self {
        self.sources = sources;
        self
    }

    /// Whether a locked PyPI wheel without a sha256 is installed (unchecked). By default, no:
    /// it is refused.
    pub fn with_allow_unhashed_pypi(mut self, allow: bool) -> Self {
        self.allow_unhashed_pypi = allow;
        self
    }

    /// Where `pip:` requirements are looked up, over those set before (by
    /// [`Self::from_env`]) and over what the requirements themselves say: an index URL given
    /// here wins, extra indexes and find-links add up (see [`crate::pypi::index::Locations::over`]).
    /// By default, PyPI.
    pub fn with_pypi_index(mut self, locations: crate::pypi::index::Locations) -> Self {
        self.pypi_locations = locations.over(&self.pypi_locations);
        self
    }

    /// How PyPI indexes are talked to (timeouts and the low-speed limit, extra CA
    /// certificates), all of it: a `PIP_CERT` taken by [`Self::from_env`] is replaced too.
    pub fn with_pypi_http(mut self, http: crate::pypi::index::HttpOptions) -> Self {
        self.pypi_http = http;
        self
    }

    /// The timeouts and low-speed limit PyPI indexes get (as registries get theirs), keeping
    /// the CA certificates set before.
    pub fn with_pypi_timeouts(mut self, timeouts: crate::http::Timeouts) -> Self {
        self.pypi_http.timeouts = timeouts;
        self
    }

    /// Whether the image gets SBOMs (SPDX and CycloneDX, in `<prefix>/share/sbom/` and as OCI
    /// referrers beside it). By default, yes.
    pub fn with_sbom(mut self, sbom: bool) -> Self {
        self.sbom = sbom;
        self
    }

    /// Entrypoint, command, labels, user and the like, over those the input declares (maps
    /// merged key by key, see [`ImageSettings::merged_with`]). By default, the input's, else
    /// the base's.
    pub fn with_settings(mut self, settings: ImageSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Takes what the environment says, as conda, pip, uv and reproducible-builds tools read
    /// it: `SOURCE_DATE_EPOCH` (the creation time), `CONDA_OVERRIDE_GLIBC` /
    /// `CONDA_OVERRIDE_CUDA` (virtual packages; one given with [`Self::with_virtual_package`]
    /// wins), and the PyPI index: `PIP_INDEX_URL` or `UV_INDEX_URL` (`UV_DEFAULT_INDEX`),
    /// `PIP_EXTRA_INDEX_URL` / `UV_EXTRA_INDEX_URL` (space-separated), `PIP_FIND_LINKS` /
    /// `UV_FIND_LINKS`, `PIP_NO_INDEX` / `UV_NO_INDEX` and `PIP_CERT` (a CA bundle). Nothing
    /// else in the library reads the environment.
    pub fn from_env(mut self) -> Result<Self, Error> {
        if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH")
            && !v.trim().is_empty()
        {
            let epoch = v
                .trim()
                .parse::<u64>()
                .map_err(|_| crate::settings::Error {
                    setting: "SOURCE_DATE_EPOCH",
                    value: v.clone(),
                    reason: "must be a whole number of seconds since 1970-01-01".into(),
                })?;
            self.source_date_epoch = Some(epoch);
        }
        for (env, name) in [
            ("CONDA_OVERRIDE_GLIBC", "__glibc"),
            ("CONDA_OVERRIDE_CUDA", "__cuda"),
        ] {
            if let Ok(v) = std::env::var(env)
                && !v.is_empty()
            {
                self.virtual_packages.entry(name.to_string()).or_insert(v);
            }
        }
        let var = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| std::env::var(n).ok())
                .find(|v| !v.trim().is_empty())
        };
        let list = |names: &[&str]| -> Vec<String> {
            var(names)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let cwd = std::env::current_dir().unwrap_or_default();
        let mut env = crate::pypi::index::Locations::given(
            var(&["PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"]),
            // uv's `UV_INDEX` entries may be named: `name=https://...`.
            list(&["PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX"])
                .into_iter()
                .map(|u| match u.split_once('=') {
                    Some((name, url)) if !name.contains("://") && url.contains("://") => {
                        url.to_string()
                    }
                    _ => u,
                })
                .collect(),
            &list(&["PIP_FIND_LINKS", "UV_FIND_LINKS"]),
            &cwd,
        );
        env.no_index = var(&["PIP_NO_INDEX", "UV_NO_INDEX"])
            .is_some_and(|v| !matches!(v.trim(), "0" | "false" | "no" | "off"));
        self.pypi_locations = self.pypi_locations.over(&env);
        if let Some(cert) = var(&["PIP_CERT"]) {
            self.pypi_http.ca_certificates.push(PathBuf::from(cert));
        }
        Ok(self)
    }

    /// Overrides a virtual package (`__glibc` = `2.28`, `__cuda` = `12.4`) for the solve.
    /// By default `__glibc` is the base image's glibc (2.17 if it cannot be read).
    pub fn with_virtual_package(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.virtual_packages.insert(name.into(), version.into());
        self
    }

    /// Channels in priority order, over those the input names. By default, the input's, else
    /// `conda-forge`.
    pub fn with_channels(mut self, channels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.channels = channels.into_iter().map(Into::into).collect();
        self
    }

    /// The conda subdir to build for. By default, `linux-64`.
    pub fn with_platform(mut self, subdir: Subdir) -> Self {
        self.subdir = subdir;
        self
    }

    /// The conda subdir this builder builds for.
    pub fn platform(&self) -> Subdir {
        self.subdir
    }

    /// The base image (`scratch`, `docker-archive:PATH`, `oci:DIR[:TAG]`). By default, `scratch`.
    pub fn with_base(mut self, base: impl Into<String>) -> Self {
        self.base = base.into();
        self
    }

    /// Where the environment lives in the image. By default, `/opt/conda`.
    pub fn with_target_prefix(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.target_prefix = prefix.into();
        self
    }

    /// How packages are split into layers. By default, [`LayeringStrategy::Auto`].
    pub fn with_layering(mut self, strategy: LayeringStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The most layers the image may have, the base's included. By default, [`MAX_LAYERS`].
    pub fn with_max_layers(mut self, max_layers: usize) -> Self {
        self.max_layers = max_layers;
        self
    }

    /// Which files are left out. By default static libraries and `*.js.map` ([`Trim::default`]).
    pub fn with_trim(mut self, trim: Trim) -> Self {
        self.trim = trim;
        self
    }

    /// The package cache root. By default, rattler's shared cache (as pixi uses).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// A fixed creation time, seconds since the epoch (`SOURCE_DATE_EPOCH` through
    /// [`Self::from_env`]). By default, the newest package's build time.
    pub fn with_source_date_epoch(mut self, epoch: Option<u64>) -> Self {
        self.source_date_epoch = epoch;
        self
    }

    /// How to reach the base image's registry (credentials, `--insecure`). By default, plain
    /// HTTP only on loopback and credentials looked up as Docker does.
    pub fn with_base_registry(mut self, options: RegistryOptions) -> Self {
        self.base_options = Some(options);
        self
    }

    /// The blob cache for registry images: the [`Store::blobs`] under the cache dir.
    pub fn blob_cache(&self) -> BlobCache {
        self.store().blobs()
    }

    /// The store under the cache dir when one was given, else the default [`Store::at`].
    fn store(&self) -> Store {
        Store::at(self.cache_dir.as_deref(), &crate::env::Env::from_process())
    }

    /// Checks the settings that need no input.
    fn check(&self) -> Result<(), Error> {
        if self.max_layers < 2 {
            return Err(Error::MaxLayers(self.max_layers));
        }
        crate::settings::target_prefix(&self.target_prefix)?;
        Ok(())
    }

    /// How many layers the packages may use: the image's limit less the base's layers, the
    /// user's and the top layer of files no package owns.
    fn layer_budget(&self, base: &Image, adds_user: bool) -> usize {
        let taken = base.layers().len() + usize::from(adds_user) + 1;
        self.max_layers.saturating_sub(taken).max(1)
    }

    /// The root of conda-docker's own caches (the wheel cache is its `pypi-v1/`).
    fn cache_root(&self) -> PathBuf {
        self.store().root().to_path_buf()
    }

    /// The cache of what each package holds, beside the blob cache.
    fn contents_cache(&self) -> ContentsCache {
        ContentsCache::new(&self.store().contents_dir())
    }

    /// A flag that stops the build when set.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Where progress goes. By default, nowhere.
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// Resolves the environment, composes its layers from the packages (or takes them from the
    /// layer cache) and puts them on the base image.
    pub async fn build(&self, input: &Input) -> Result<BuiltImage, Error> {
        let Prepared {
            subdir,
            target_prefix,
            settings,
            user,
            cache_dir,
            base,
            records,
            sources,
            client,
        } = self.prepare(input).await?;
        let reporter = self.reporter.as_ref();

        // What each package holds: from the contents cache, else fetched and read.
        reporter.stage_started(Stage::Install, &format!("{} packages", records.len()));
        reporter.install_started(records.len());
        let blob_cache = self.blob_cache();
        blob_cache.remove_stale();
        let contents_cache = self.contents_cache();
        contents_cache.remove_stale();
        let fetcher = Fetcher::new(&cache_dir, client, self.reporter.clone(), sources.clone());
        let cache_lock = fetcher.lock().await?;
        let read: Vec<(Arc<PackageContents>, Option<PathBuf>)> =
            futures::stream::iter(records.iter().map(|r| fetcher.contents(r, &contents_cache)))
                .buffered(CONCURRENT_PACKAGES)
                .try_collect()
                .await?;
        self.check_cancel()?;
        reporter.stage_finished(Stage::Install, &format!("{} packages", read.len()));
        // The image's records, from the packages themselves, in their dependency order; the
        // records as resolved stay beside them, to fetch by.
        let mut rows: Vec<(
            RepoDataRecord,
            RepoDataRecord,
            Arc<PackageContents>,
            Option<PathBuf>,
        )> = Vec::with_capacity(records.len());
        for (source, (contents, dir)) in records.into_iter().zip(read) {
            let image_record = record::image_record(&source, &contents, &sources)?;
            rows.push((image_record, source, contents, dir));
        }
        let order = solve::dependency_order(rows.iter().map(|r| &r.0));
        let mut rows: Vec<Option<_>> = rows.into_iter().map(Some).collect();
        let rows: Vec<_> = order.iter().filter_map(|&i| rows[i].take()).collect();
        let mut records = Vec::with_capacity(rows.len());
        let mut fetch_records = Vec::with_capacity(rows.len());
        let mut contents = Vec::with_capacity(rows.len());
        // Packages fetched just now to be read need no second look-up in the package cache.
        let mut known_dirs = Vec::with_capacity(rows.len());
        for (image_record, source, c, dir) in rows {
            records.push(image_record);
            fetch_records.push(source);
            contents.push(c);
            known_dirs.push(dir);
        }

        let python = place::python_info(&records, subdir)?;
        let content_refs: Vec<&PackageContents> = contents.iter().map(|c| c.as_ref()).collect();
        let placement = place::place(
            &records,
            &content_refs,
            python.as_ref(),
            &target_prefix,
            self.trim,
        )?;
        for c in &placement.clobbers {
            reporter.warning(&format!(
                "`{}` and `{}` both ship `{}`; the image gets `{}`'s (the later in dependency order)",
                c.loser, c.winner, c.path, c.winner
            ));
        }
        let dists: Vec<String> = records.iter().map(|r| r.identifier.to_string()).collect();
        compose::check_placeholders(
            &dists
                .iter()
                .map(String::as_str)
                .zip(content_refs.iter().copied())
                .collect::<Vec<_>>(),
            &target_prefix,
        )?;

        // The PyPI distributions, installed over the conda packages.
        let wheels = if input.pypi.is_none() {
            None
        } else {
            let python = python.as_ref().ok_or(pypi::PypiError::NoPython)?;
            let provided = crate::pypi::provides::provided(&records, &content_refs);
            let (pins, index) = self
                .cancellable(self.pypi_pins(input, &records, &base, &provided))
                .await??;
            let fetched = self.cancellable(pypi::fetch(&index, &pins)).await??;
            reporter.stage_finished(Stage::Pypi, &format!("{} wheels", fetched.len()));
            let target = pypi::Target::new(python, &target_prefix);
            let owners: HashMap<String, String> = placement
                .packages
                .iter()
                .zip(&dists)
                .flat_map(|(p, d)| p.files.iter().map(move |f| (f.path.clone(), d.clone())))
                .collect();
            Some((
                pypi::install(
                    &fetched,
                    &target,
                    &provided,
                    &owners,
                    &pypi::InstalledCache::new(&self.store().installed_wheels_dir()),
                )?,
                target,
            ))
        };
        let budget = self.layer_budget(&base, user.is_some());
        // The wheels take a share of the budget (a fifth at most), the packages the rest.
        let wheel_budget = match &wheels {
            Some((w, _)) if !w.is_empty() => match self.strategy {
                LayeringStrategy::Single => 1,
                _ => w.len().min((budget / 5).max(1)),
            },
            _ => 0,
        };
        let budget = budget.saturating_sub(wheel_budget).max(1);
        let sizes: Vec<u64> = contents.iter().map(|c| c.file_bytes()).collect();
        let plan = plan_layers(&records, &sizes, self.strategy, budget);
        let epoch = self
            .source_date_epoch
            .or_else(|| plan.groups.iter().filter_map(|g| g.timestamp).max())
            .unwrap_or(0);
        let owner = match (&user, settings.writable_prefix) {
            (Some(u), true) => Some(Ownership {
                root: target_prefix
                    .strip_prefix("/")
                    .unwrap_or(&target_prefix)
                    .to_path_buf(),
                uid: u.uid,
                gid: u.gid,
            }),
            _ => None,
        };
        let clamp = self.source_date_epoch.unwrap_or(u64::MAX);
        let layer_settings: Vec<LayerSettings> = plan
            .groups
            .iter()
            .map(|g| LayerSettings {
                target_prefix: target_prefix.clone(),
                owner: owner.clone(),
                mtime: g.timestamp.unwrap_or(epoch).min(clamp),
                trim: self.trim,
            })
            .collect();
        let members = |group: &LayerGroup| -> Vec<Member<'_>> {
            group
                .members
                .iter()
                .map(|&i| Member {
                    dist: dists[i].clone(),
                    package_key: ContentsCache::key(&records[i]),
                    contents: &contents[i],
                    placed: &placement.packages[i],
                })
                .collect()
        };
        // `single` puts the files no package owns in its one layer too.
        let package_list = crate::conda::lock::explicit_text(&records, subdir);
        let pypi_locked = wheels
            .as_ref()
            .map(|(w, _)| pypi::locked(w))
            .unwrap_or_default();
        let sbom = self
            .sbom
            .then(|| sbom_of(input.name.as_deref(), &records, &pypi_locked, &base, epoch));
        let top = top_entries(&target_prefix, &package_list, sbom.as_ref());
        let (extra, extra_digest) = match self.strategy {
            LayeringStrategy::Single => {
                let mut all = package_list.as_bytes().to_vec();
                if let Some(s) = &sbom {
                    all.extend_from_slice(&s.spdx);
                    all.extend_from_slice(&s.cyclonedx);
                }
                (top.clone(), Some(Digest::of(&all)))
            }
            _ => (Vec::new(), None),
        };
        let keys: Vec<Option<Digest>> = plan
            .groups
            .iter()
            .zip(&layer_settings)
            .map(|(g, s)| compose::layer_key(&members(g), extra_digest.as_ref(), s))
            .collect();
        let mut stored: Vec<Option<KeyedLayer>> = keys
            .iter()
            .map(|k| k.as_ref().and_then(|k| blob_cache.keyed_layer(k)))
            .collect();

        // Layers nobody has made yet: fetch their packages, then compose them, in parallel.
        let missing: Vec<usize> = (0..plan.groups.len())
            .filter(|&g| stored[g].is_none())
            .collect();
        let mut dirs: HashMap<String, PathBuf> = HashMap::new();
        let wanted: Vec<usize> = missing
            .iter()
            .flat_map(|&g| plan.groups[g].members.iter().copied())
            .filter(|&i| {
                if let Some(dir) = known_dirs[i].take() {
                    dirs.insert(dists[i].clone(), dir);
                    false
                } else {
                    true
                }
            })
            .collect();
        let fetched: Vec<PathBuf> =
            futures::stream::iter(wanted.iter().map(|&i| fetcher.fetch(&fetch_records[i])))
                .buffered(CONCURRENT_PACKAGES)
                .try_collect()
                .await?;
        for (&i, dir) in wanted.iter().zip(fetched) {
            dirs.insert(dists[i].clone(), dir);
        }
        let trimmed = placement.trimmed_bytes;
        reporter.stage_finished(
            Stage::Install,
            &format!(
                "{} packages, {} of {} layers to make, {} trimmed",
                records.len(),
                missing.len(),
                plan.groups.len(),
                human_bytes(trimmed)
            ),
        );
        self.check_cancel()?;
        if !missing.is_empty() {
            let made = {
                let jobs: Vec<(usize, Vec<Member<'_>>)> = missing
                    .iter()
                    .map(|&g| (g, members(&plan.groups[g])))
                    .collect();
                make_layers(
                    &jobs,
                    &extra,
                    &dirs,
                    &layer_settings,
                    &keys,
                    &blob_cache,
                    &self.cancel,
                )
            };
            for (g, layer) in made? {
                stored[g] = Some(layer);
            }
        }

        drop(cache_lock);
        let mut image = base;
        for ((group, layer), settings) in plan.groups.iter().zip(&stored).zip(&layer_settings) {
            let layer = layer.as_ref().ok_or_else(Error::cancelled)?;
            let comment = (!group.packages.is_empty()).then(|| group.packages.join(" "));
            image.push_layer(
                compose::cached_layer(&blob_cache, layer, group.description.clone()),
                History {
                    created: Some(rfc3339(settings.mtime)),
                    created_by: Some(format!("conda-docker: {}", group.description)),
                    comment,
                    ..Default::default()
                },
            );
        }
        if let Some((installed, target)) = &wheels {
            let settings = LayerSettings {
                target_prefix: target_prefix.clone(),
                owner: owner.clone(),
                mtime: epoch.min(clamp),
                trim: self.trim,
            };
            for group in pypi::groups(installed, wheel_budget) {
                let members: Vec<_> = group.iter().map(|&i| &installed[i]).collect();
                let key = pypi::layer_key(&members, target, &settings);
                let layer = match blob_cache.keyed_layer(&key) {
                    Some(layer) => layer,
                    None => pypi::make_layer(&members, &settings, &key, &blob_cache, &self.cancel)?,
                };
                self.check_cancel()?;
                let names: Vec<String> = members.iter().map(|(_, i)| pypi::dist(i)).collect();
                let description = format!("PyPI: {}", names.join(" "));
                image.push_layer(
                    compose::cached_layer(&blob_cache, &layer, description.clone()),
                    History {
                        created: Some(rfc3339(settings.mtime)),
                        created_by: Some(format!("conda-docker: {description}")),
                        comment: Some(names.join(" ")),
                        ..Default::default()
                    },
                );
            }
        }
        if extra.is_empty() {
            push_top_layer(&mut image, top, epoch.min(clamp), owner.as_ref());
        }
        set_prefix_env(&mut image, &target_prefix, epoch);
        if let Some(u) = &user {
            image
                .add_user(&u.name, u.uid, u.gid, epoch, &self.cancel)
                .map_err(|e| match e {
                    crate::image::Error::Unsupported(reason) => Error::User(reason),
                    other => Error::Image(other),
                })?;
        }
        configure(
            &mut image,
            input,
            &settings,
            &placement.activation,
            &package_list,
            sbom.as_ref(),
        )?;
        self.annotate(&mut image, epoch);
        Ok(BuiltImage {
            image,
            sbom,
            records,
            pypi: pypi_locked,
            plan,
            clobbers: placement.clobbers,
            trimmed_bytes: trimmed,
        })
    }

    /// What every build and plan starts with: the settings checked, the base read and the
    /// exact packages resolved.
    async fn prepare(&self, input: &Input) -> Result<Prepared, Error> {
        if matches!(&input.packages, Packages::Specs(s) if s.is_empty()) {
            return Err(Error::NoSpecs);
        }
        self.check()?;
        let subdir = self.subdir;
        let platform = oci_platform(subdir);
        let target_prefix = crate::settings::target_prefix(&self.target_prefix)?;
        let settings = input.settings.clone().merged_with(self.settings.clone());
        settings.validate()?;
        let user = settings.user_spec()?;
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => rattler_cache::default_cache_dir()
                .map_err(|e| crate::conda::Error::CacheDir(e.to_string()))?,
        };
        let base = self.read_base(subdir, &platform).await?;
        self.check_cancel()?;
        let client = solve::http_client();
        let gateway = solve::gateway(&cache_dir, client.clone());
        let (records, sources) = self.resolve(input, &gateway, subdir, &base).await?;
        self.reporter
            .stage_finished(Stage::Solve, &format!("{} packages", records.len()));
        self.check_cancel()?;
        Ok(Prepared {
            subdir,
            target_prefix,
            settings,
            user,
            cache_dir,
            base,
            records,
            sources,
            client,
        })
    }

    /// The layer plan of the build, made from the records alone, without downloading or
    /// composing anything: which layers, with which packages, and which packages the package
    /// cache lacks.
    pub async fn dry_run(&self, input: &Input) -> Result<DryRun, Error> {
        let Prepared {
            user,
            cache_dir,
            base,
            records,
            sources,
            ..
        } = self.prepare(input).await?;
        let budget = self.layer_budget(&base, user.is_some());
        let contents_cache = self.contents_cache();
        let known: Vec<Option<PackageContents>> = records
            .iter()
            .map(|r| ContentsCache::key(r).and_then(|k| contents_cache.get(&k)))
            .collect();
        // A package read before is planned by its files' bytes, as the build plans it; one
        // never read, by its archive size (the lockfile's or repodata's), an estimate.
        let sizes: Vec<u64> = records
            .iter()
            .zip(&known)
            .map(|(r, c)| match c {
                Some(c) => c.file_bytes(),
                None => r.package_record.size.unwrap_or(0),
            })
            .collect();
        let plan = plan_layers(&records, &sizes, self.strategy, budget);
        let cache = rattler_cache::package_cache::PackageCache::new(
            cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR),
        );
        let index = cache.index().await.map_err(crate::conda::Error::io(
            "reading the package cache",
            &cache_dir,
        ))?;
        let downloads = records
            .iter()
            .zip(&known)
            .filter(|(r, c)| !index.contains_record(r) && c.is_none())
            .map(|(r, _)| Download {
                package: plan::dist_name(r),
                url: sources.fetch_url(&r.url).to_string(),
                size: r.package_record.size,
            })
            .collect();
        // The PyPI wheels, resolved as the build resolves them; what conda provides is known
        // only for the packages read before.
        let pypi = if input.pypi.is_none() {
            Vec::new()
        } else {
            let (known_records, known_contents): (Vec<RepoDataRecord>, Vec<&PackageContents>) =
                records
                    .iter()
                    .zip(&known)
                    .filter_map(|(r, c)| Some((r.clone(), c.as_ref()?)))
                    .unzip();
            let provided = crate::pypi::provides::provided(&known_records, &known_contents);
            let (pins, _) = self
                .cancellable(self.pypi_pins(input, &records, &base, &provided))
                .await??;
            self.reporter
                .stage_finished(Stage::Pypi, &format!("{} wheels", pins.len()));
            let root = self.cache_root();
            pins.into_iter()
                .map(|pin| PlannedWheel {
                    cached: pin
                        .sha256
                        .as_deref()
                        .is_some_and(|s| crate::pypi::index::cached_wheel(&root, s).is_file()),
                    pin,
                })
                .collect()
        };
        Ok(DryRun {
            platform: self.subdir.to_string(),
            base_layers: base.layers().len(),
            budget,
            plan,
            downloads,
            pypi,
        })
    }

    /// Reads the base image and checks it is for `platform`.
    async fn read_base(&self, subdir: Subdir, platform: &Platform) -> Result<Image, Error> {
        let reporter = self.reporter.as_ref();
        reporter.stage_started(Stage::ReadBase, &self.base);
        let base_location = Location::parse_source(&self.base)?;
        let remote = Remote {
            options: self
                .base_options
                .clone()
                .unwrap_or_else(|| RegistryOptions::from_env(&crate::env::Env::from_process())),
            cache: self.blob_cache(),
        };
        let ctx = Session::new(&self.cancel)
            .with_remote(&remote)
            .with_reporter(reporter)
            .read(platform);
        let base = transport::read(&base_location, &ctx)
            .await
            .map_err(|source| Error::Base {
                base: self.base.clone(),
                source: Box::new(source),
            })?;
        if base_location != Location::Scratch && !platform.matches(&base.platform()) {
            return Err(Error::BasePlatform {
                base: self.base.clone(),
                found: base.platform().to_string(),
                wanted: platform.to_string(),
                subdir: subdir.to_string(),
            });
        }
        reporter.stage_finished(Stage::ReadBase, &format!("{} layers", base.layers().len()));
        Ok(base)
    }

    /// The exact packages to install (solved, as a lockfile records them, or as given), and
    /// where their channels' packages are fetched from. A lockfile's channels are only places
    /// to fetch from: its packages are read from the lockfile alone, never from repodata.
    async fn resolve(
        &self,
        input: &Input,
        gateway: &rattler_repodata_gateway::Gateway,
        subdir: Subdir,
        base: &Image,
    ) -> Result<(Vec<RepoDataRecord>, Sources), Error> {
        let reporter = self.reporter.as_ref();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let mut sources = self.sources.clone();
        // The builder's channels win over the input's; with none named anywhere, conda-forge.
        let named = match (&self.channels, &input.channels) {
            (given, _) if !given.is_empty() => given.clone(),
            (_, from_input) if !from_input.is_empty() => from_input.clone(),
            _ => vec!["conda-forge".to_string()],
        };
        let channels = named
            .iter()
            .map(|c| sources.parse_channel(c, &cwd, subdir))
            .collect::<Result<Vec<_>, _>>()?;
        for c in &channels {
            sources.learn(c);
        }
        let records = match &input.packages {
            Packages::Specs(specs) => {
                reporter.stage_started(Stage::Solve, &specs.join(" "));
                let parsed = solve::parse_specs(specs)?;
                let fetch: Vec<_> = channels.iter().map(|c| c.fetch.clone()).collect();
                let virtual_packages = self.virtual_packages(subdir, base)?;
                solve::solve(gateway, &fetch, subdir, parsed, virtual_packages).await?
            }
            Packages::Locked(locked) => {
                reporter.stage_started(Stage::Solve, &format!("{} locked packages", locked.len()));
                crate::conda::lock::records_offline(locked)?
            }
            Packages::Records(records) => {
                reporter.stage_started(Stage::Solve, &format!("{} packages", records.len()));
                solve::sort_by_dependency(records.clone())
            }
        };
        Ok((records, sources))
    }

    /// The manifest's annotations: when the image was made, from what base, and its SBOM.
    /// A registry base is named by its reference, and by its digest when pinned by one.
    fn annotate(&self, image: &mut Image, created: u64) {
        let annotations = image.annotations_mut();
        annotations.insert("org.opencontainers.image.created".into(), rfc3339(created));
        if let Ok(Location::Registry(reference)) = Location::parse_source(&self.base) {
            let name = reference.to_string();
            if let Some((_, digest)) = name.rsplit_once('@') {
                annotations.insert(
                    "org.opencontainers.image.base.digest".into(),
                    digest.to_string(),
                );
            }
            annotations.insert("org.opencontainers.image.base.name".into(), name);
        }
    }

    /// The virtual packages the solve assumes for an image on `base`.
    fn virtual_packages(
        &self,
        subdir: Subdir,
        base: &Image,
    ) -> Result<Vec<GenericVirtualPackage>, Error> {
        let mut overrides = self.virtual_packages.clone();
        overrides.remove("__glibc");
        let glibc = self.glibc(base)?;
        solve::virtual_packages(subdir, &glibc, &overrides).map_err(Error::Conda)
    }

    /// The glibc the image has: `__glibc` as overridden, else the base's, else
    /// [`DEFAULT_GLIBC`]. The solve and PyPI's manylinux tags both take it.
    fn glibc(&self, base: &Image) -> Result<String, Error> {
        Ok(match self.virtual_packages.get("__glibc") {
            Some(v) => v.clone(),
            None => crate::image::files::glibc_version(base, &self.cancel)?
                .unwrap_or_else(|| DEFAULT_GLIBC.to_string()),
        })
    }

    /// The input's wheels, not fetched yet: its locked ones, or its `pip:` section resolved
    /// for the environment's python on `base`'s glibc; and the index to fetch them from.
    async fn pypi_pins(
        &self,
        input: &Input,
        records: &[RepoDataRecord],
        base: &Image,
        provided: &BTreeMap<String, crate::pypi::provides::Provided>,
    ) -> Result<(Vec<pypi::Pin>, crate::pypi::index::Index), Error> {
        use crate::pypi::index::{Index, IndexOptions, Locations};
        let index = |locations: Locations| {
            Index::new(&IndexOptions {
                locations,
                cache_dir: self.cache_root(),
                http: self.pypi_http.clone(),
                reporter: self.reporter.clone(),
            })
            .map_err(pypi::PypiError::from)
        };
        let reporter = self.reporter.as_ref();
        Ok(match &input.pypi {
            crate::input::Pypi::Requirements(requirements) => {
                let python = records
                    .iter()
                    .find(|r| r.package_record.name.as_normalized() == "python")
                    .ok_or(pypi::PypiError::NoPython)?;
                let target = pypi::resolve_target(
                    &python.package_record.version.to_string(),
                    &self.glibc(base)?,
                    self.subdir,
                )?;
                let index = index(self.pypi_locations.over(&requirements.locations))?;
                reporter.stage_started(
                    Stage::Pypi,
                    &format!(
                        "{} requirements on {}",
                        requirements.requirements.len(),
                        index.sources().join(", ")
                    ),
                );
                let pins = pypi::resolved_pins(requirements, &target, provided, &index).await?;
                (pins, index)
            }
            crate::input::Pypi::Locked(locked) => {
                reporter.stage_started(Stage::Pypi, &format!("{} locked wheels", locked.len()));
                let pins = pypi::locked_pins(locked, self.allow_unhashed_pypi)?;
                // Locked wheels are fetched from where the lock says, never looked up.
                let no_index = Locations {
                    no_index: true,
                    ..Locations::default()
                };
                (pins, index(no_index)?)
            }
            // Not called for it; no wheel, and an index that is never asked.
            crate::input::Pypi::None => (Vec::new(), index(Locations::default())?),
        })
    }

    /// Runs `work` until it ends or the build is cancelled.
    async fn cancellable<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, Error> {
        tokio::select! {
            out = work => Ok(out),
            () = self.cancel.cancelled() => Err(Error::cancelled()),
        }
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::cancelled())
        } else {
            Ok(())
        }
    }
}

/// Sets the environment, the package-list label and the image settings in the config.
fn configure(
    image: &mut Image,
    input: &Input,
    settings: &ImageSettings,
    activation: &BTreeMap<String, String>,
    package_list: &str,
    sbom: Option<&Sbom>,
) -> Result<(), Error> {
    let run = &mut image.config_mut().config;
    for (k, v) in &input.variables {
        crate::settings::check_env("variables:", k, v)?;
    }
    for (k, v) in activation {
        crate::settings::check_env("a package's etc/conda/env_vars.d", k, v)?;
    }
    let env_name = input.name.as_deref().unwrap_or("base");
    run.set_env_vars(
        std::iter::once(("CONDA_DEFAULT_ENV", env_name)).chain(
            activation
                .iter()
                .chain(&input.variables)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        ),
    );
    let labels = run.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        PACKAGES_LABEL.to_string(),
        crate::image::Digest::of(package_list.as_bytes()).to_string(),
    );
    if let Some(sbom) = sbom {
        labels.insert(
            crate::sbom::SBOM_LABEL.to_string(),
            crate::image::Digest::of(&sbom.spdx).to_string(),
        );
    }
    Ok(settings.apply(image)?)
}

/// The SBOMs of an environment of `records` on `base`, created at `created`.
fn sbom_of(
    name: Option<&str>,
    records: &[RepoDataRecord],
    pypi: &[crate::conda::lock::LockedPypi],
    base: &Image,
    created: u64,
) -> Sbom {
    // The base by its content alone: where it was read from (a registry, a mirror of it,
    // an archive's path) is not part of the image.
    let base = (!base.layers().is_empty()).then(|| crate::sbom::BaseImage {
        image_id: Digest::of(&base.config_bytes(base.config().rootfs.diff_ids.clone())),
    });
    let subject = crate::sbom::Subject {
        name: name.unwrap_or("conda environment"),
        records,
        pypi,
        base: base.as_ref(),
        created,
    };
    Sbom {
        spdx: crate::sbom::spdx(&subject),
        cyclonedx: crate::sbom::cyclonedx(&subject),
    }
}

/// What [`Builder::prepare`] found.
struct Prepared {
    subdir: Subdir,
    target_prefix: PathBuf,
    /// The input's settings under the builder's, checked.
    settings: ImageSettings,
    user: Option<crate::settings::UserSpec>,
    cache_dir: PathBuf,
    base: Image,
    records: Vec<RepoDataRecord>,
    sources: Sources,
    client: reqwest_middleware::ClientWithMiddleware,
}

/// What a build would do ([`Builder::dry_run`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DryRun {
    /// The conda platform.
    pub platform: String,
    /// How many layers the base image has.
    pub base_layers: usize,
    /// How many layers the packages may use.
    pub budget: usize,
    /// The package layers, bottom first.
    #[serde(flatten)]
    pub plan: LayerPlan,
    /// Packages neither the package cache nor the contents cache has.
    pub downloads: Vec<Download>,
    /// The PyPI wheels the build would install (before those conda turns out to provide).
    pub pypi: Vec<PlannedWheel>,
}

/// A PyPI wheel a build would install.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlannedWheel {
    /// What and from where.
    #[serde(flatten)]
    pub pin: pypi::Pin,
    /// The wheel cache has it already.
    pub cached: bool,
}

/// A package a build would download.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Download {
    /// `name-version-build`.
    pub package: String,
    /// Where from.
    pub url: String,
    /// Its recorded size.
    pub size: Option<u64>,
}

/// How many packages are fetched or read at once.
const CONCURRENT_PACKAGES: usize = 8;

/// Makes the missing layers, as many at once as there are cores.
fn make_layers(
    jobs: &[(usize, Vec<Member<'_>>)],
    extra: &[Entry],
    dirs: &HashMap<String, PathBuf>,
    settings: &[LayerSettings],
    keys: &[Option<Digest>],
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<Vec<(usize, KeyedLayer)>, Error> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((g, members)) = jobs.get(at) else {
                        break;
                    };
                    let made = compose::make_layer(
                        members,
                        extra,
                        dirs,
                        &settings[*g],
                        keys[*g].as_ref(),
                        cache,
                        cancel,
                    );
                    let failed = made.is_err();
                    if let Ok(mut r) = results.lock() {
                        r.push((*g, made));
                    }
                    if failed {
                        // Stop the other workers: the build fails anyway.
                        next.store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut made = Vec::new();
    for (g, result) in results.into_inner().unwrap_or_default() {
        made.push((g, result?));
    }
    if cancel.is_cancelled() {
        return Err(Error::cancelled());
    }
    Ok(made)
}

/// The files no package owns: `conda-meta/history` and the package list.
fn top_entries(prefix: &Path, package_list: &str, sbom: Option<&Sbom>) -> Vec<Entry> {
    let in_image = prefix.strip_prefix("/").unwrap_or(prefix);
    let sbom_files = sbom.into_iter().flat_map(|s| {
        [
            Entry {
                path: in_image.join(crate::sbom::SPDX_FILE),
                data: EntryData::Bytes(s.spdx.clone()),
                mode: 0o644,
            },
            Entry {
                path: in_image.join(crate::sbom::CYCLONEDX_FILE),
                data: EntryData::Bytes(s.cyclonedx.clone()),
                mode: 0o644,
            },
        ]
    });
    let mut entries = vec![
        Entry {
            path: in_image.join("conda-meta/history"),
            data: EntryData::Bytes(Vec::new()),
            mode: 0o644,
        },
        Entry {
            path: in_image.join(PACKAGE_LIST),
            data: EntryData::Bytes(package_list.as_bytes().to_vec()),
            mode: 0o644,
        },
    ];
    entries.extend(sbom_files);
    entries
}

/// An environment's SBOMs, as the image holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sbom {
    /// The SPDX 2.3 JSON document.
    pub spdx: Vec<u8>,
    /// The CycloneDX 1.6 JSON document.
    pub cyclonedx: Vec<u8>,
}

impl Sbom {
    /// The document in `format`.
    pub fn document(&self, format: crate::sbom::Format) -> &[u8] {
        match format {
            crate::sbom::Format::Spdx => &self.spdx,
            crate::sbom::Format::CycloneDx => &self.cyclonedx,
        }
    }
}

/// The top layer, of the files no package owns.
fn push_top_layer(image: &mut Image, entries: Vec<Entry>, mtime: u64, owner: Option<&Ownership>) {
    let description = "environment files owned by no package";
    image.push_layer(
        Layer::from_tar_source(
            Arc::new(EntriesLayer {
                entries,
                mtime,
                owner: owner.cloned(),
            }),
            description,
        ),
        History {
            created: Some(rfc3339(mtime)),
            created_by: Some(format!("conda-docker: {description}")),
            ..Default::default()
        },
    );
}

/// Sets `created`, `PATH` and `CONDA_PREFIX` for the environment at `prefix`.
fn set_prefix_env(image: &mut Image, prefix: &Path, created: u64) {
    let config = image.config_mut();
    config.created = Some(rfc3339(created));
    let bin = prefix.join("bin").display().to_string();
    let path = config
        .config
        .env_var("PATH")
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    config.config.set_env_var("PATH", &format!("{bin}:{path}"));
    config
        .config
        .set_env_var("CONDA_PREFIX", &prefix.display().to_string());
}

/// `1.2 MB`.
fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{} kB", bytes.div_ceil(1000))
    }
}

/// A built image, with the packages in it; its package layers are blobs in the blob cache.
#[derive(Debug)]
pub struct BuiltImage {
    image: Image,
    sbom: Option<Sbom>,
    records: Vec<RepoDataRecord>,
    pypi: Vec<crate::conda::lock::LockedPypi>,
    plan: LayerPlan,
    clobbers: Vec<Clobber>,
    trimmed_bytes: u64,
}

impl BuiltImage {
    /// The image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The SBOMs the image holds, unless built without.
    pub fn sbom(&self) -> Option<&Sbom> {
        self.sbom.as_ref()
    }

    /// What to attach beside the image as OCI referrers: its SBOMs (none without).
    pub fn referrers(&self) -> Vec<crate::image::referrer::Artifact> {
        let Some(sbom) = &self.sbom else {
            return Vec::new();
        };
        let created = self.image.config().created.clone().unwrap_or_default();
        [crate::sbom::Format::Spdx, crate::sbom::Format::CycloneDx]
            .into_iter()
            .map(|format| crate::image::referrer::Artifact {
                artifact_type: format.media_type().to_string(),
                bytes: sbom.document(format).to_vec(),
                annotations: [(
                    "org.opencontainers.image.created".to_string(),
                    created.clone(),
                )]
                .into(),
            })
            .collect()
    }

    /// The image, to edit before writing.
    pub fn image_mut(&mut self) -> &mut Image {
        &mut self.image
    }

    /// The installed packages, dependencies first.
    pub fn records(&self) -> &[RepoDataRecord] {
        &self.records
    }

    /// The PyPI distributions installed over the packages, as a lockfile pins them.
    pub fn pypi(&self) -> &[crate::conda::lock::LockedPypi] {
        &self.pypi
    }

    /// How the environment was split into layers.
    pub fn plan(&self) -> &LayerPlan {
        &self.plan
    }

    /// Paths two packages shipped (the later one's file is in the image).
    pub fn clobbers(&self) -> &[Clobber] {
        &self.clobbers
    }

    /// Bytes of package files left out by trimming.
    pub fn trimmed_bytes(&self) -> u64 {
        self.trimmed_bytes
    }
}
