//! The builder that joins both sides: specs and a base image in, an image out.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conda_docker::build::Error> {
//! use conda_docker::build::Builder;
//! let built = Builder::new(["bzip2"])
//!     .with_channels(["conda-forge"])
//!     .with_base("docker-archive:base.tar")
//!     .build()
//!     .await?;
//! println!("{} layers", built.image().layers().len());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rattler_conda_types::{GenericVirtualPackage, RepoDataRecord, Subdir};

use crate::conda::install::{InstallOptions, StagedPrefix};
use crate::conda::lock::LockedPackage;
use crate::conda::plan::{LayerPlan, LayeringStrategy, MAX_LAYERS, plan_layers};
use crate::conda::{channel, install, solve};
use crate::image::config::rfc3339;
use crate::image::layer::EntriesLayer;
use crate::image::layer_tar::{Entry, Ownership};
use crate::image::{Cancel, History, Image, Layer, Platform};
use crate::reporter::{NoReporter, Reporter, Stage};
use crate::settings::ImageSettings;
use crate::transport::registry::{BlobCache, RegistryOptions};
use crate::transport::{self, Location, LocationError, Remote};

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
        source: crate::image::Error,
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
    #[error("{0}")]
    Settings(String),
    /// Building the layers failed.
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// The build was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Where the image records the packages it holds (conda's explicit format), in the prefix.
pub const PACKAGE_LIST: &str = "conda-meta/explicit.txt";

/// The label holding the digest of [`PACKAGE_LIST`].
pub const PACKAGES_LABEL: &str = "org.conda-docker.packages.digest";

/// The glibc version assumed for the image when nothing says otherwise (conda-forge's minimum).
pub const DEFAULT_GLIBC: &str = "2.17";

/// The OCI platform of a conda subdir (`linux-64` is `linux/amd64`).
pub fn oci_platform(subdir: Subdir) -> Platform {
    let (arch, variant) = match subdir {
        Subdir::Linux64 => ("amd64".to_string(), None),
        Subdir::LinuxAarch64 => ("arm64".to_string(), Some("v8")),
        Subdir::LinuxPpc64le => ("ppc64le".to_string(), None),
        Subdir::LinuxS390X => ("s390x".to_string(), None),
        Subdir::Linux32 => ("386".to_string(), None),
        Subdir::LinuxArmV7l => ("arm".to_string(), Some("v7")),
        Subdir::LinuxArmV6l => ("arm".to_string(), Some("v6")),
        other => (
            other.arch().map(|a| a.to_string()).unwrap_or_default(),
            None,
        ),
    };
    Platform::linux(&arch, variant)
}

/// Builds a conda environment image. Every setting has a default; see each `with_` method.
#[must_use]
pub struct Builder {
    packages: Packages,
    channels: Vec<String>,
    subdir: String,
    base: String,
    target_prefix: PathBuf,
    strategy: LayeringStrategy,
    cache_dir: Option<PathBuf>,
    source_date_epoch: Option<u64>,
    cancel: Cancel,
    reporter: Arc<dyn Reporter>,
    base_options: Option<RegistryOptions>,
    env_name: Option<String>,
    variables: BTreeMap<String, String>,
    settings: ImageSettings,
    virtual_packages: BTreeMap<String, String>,
}

/// Which packages go into the environment.
#[derive(Clone, Debug)]
pub enum Packages {
    /// Match specs, solved against the channels.
    Specs(Vec<String>),
    /// Exact packages from a lockfile (looked up in their channels' repodata; no solve).
    Locked(Vec<LockedPackage>),
    /// Exact records, e.g. from an existing environment's `conda-meta`.
    Records(Vec<RepoDataRecord>),
}

impl Builder {
    /// A build of the given match specs.
    pub fn new(specs: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            packages: Packages::Specs(specs.into_iter().map(Into::into).collect()),
            channels: vec!["conda-forge".into()],
            subdir: "linux-64".into(),
            base: "scratch".into(),
            target_prefix: PathBuf::from("/opt/conda"),
            strategy: LayeringStrategy::Layered,
            cache_dir: None,
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            cancel: Cancel::new(),
            reporter: Arc::new(NoReporter),
            base_options: None,
            env_name: None,
            variables: BTreeMap::new(),
            settings: ImageSettings::default(),
            virtual_packages: BTreeMap::new(),
        }
    }

    /// A build of exactly these packages (from a lockfile or an existing environment).
    pub fn from_packages(packages: Packages) -> Self {
        Self {
            packages,
            ..Self::new(Vec::<String>::new())
        }
    }

    /// A builder for what `input` describes: its packages, name, variables and settings, and
    /// its channels when it names any.
    pub fn from_input(input: crate::input::Input) -> Self {
        let builder = Self::from_packages(input.packages)
            .with_env_name(input.name)
            .with_variables(input.variables)
            .with_settings(input.settings);
        if input.channels.is_empty() {
            builder
        } else {
            builder.with_channels(input.channels)
        }
    }

    /// The environment's name, for `CONDA_DEFAULT_ENV`. By default, `base`.
    pub fn with_env_name(mut self, name: Option<String>) -> Self {
        self.env_name = name;
        self
    }

    /// Environment variables the environment declares (`variables:` of an environment.yml).
    pub fn with_variables(mut self, variables: BTreeMap<String, String>) -> Self {
        self.variables = variables;
        self
    }

    /// Entrypoint, command, labels, user and the like. By default, the base's.
    pub fn with_settings(mut self, settings: ImageSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Overrides a virtual package (`__glibc` = `2.28`, `__cuda` = `12.4`) for the solve.
    /// By default `__glibc` is the base image's glibc (2.17 if it cannot be read), and
    /// `CONDA_OVERRIDE_GLIBC` / `CONDA_OVERRIDE_CUDA` are honoured as conda does.
    pub fn with_virtual_package(
        mut self,
        name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.virtual_packages.insert(name.into(), version.into());
        self
    }

    /// Channels in priority order. By default, `conda-forge`.
    pub fn with_channels(mut self, channels: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.channels = channels.into_iter().map(Into::into).collect();
        self
    }

    /// The conda subdir to build for. By default, `linux-64`.
    pub fn with_platform(mut self, subdir: impl Into<String>) -> Self {
        self.subdir = subdir.into();
        self
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

    /// How packages are split into layers. By default, one layer per package.
    pub fn with_layering(mut self, strategy: LayeringStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The package cache root. By default, rattler's shared cache (as pixi uses).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// A fixed creation time (seconds since the epoch). By default, `SOURCE_DATE_EPOCH` if set,
    /// else the newest package's build time.
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

    /// The blob cache for registry images: `<cache dir>/oci-v1` when a cache dir was given,
    /// else the default [`BlobCache::default_dir`].
    pub fn blob_cache(&self) -> BlobCache {
        BlobCache::for_cache_dir(self.cache_dir.as_deref())
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

    /// Resolves, installs and layers the environment on the base image.
    pub async fn build(self) -> Result<BuiltImage, Error> {
        if matches!(&self.packages, Packages::Specs(s) if s.is_empty()) {
            return Err(Error::NoSpecs);
        }
        let subdir = channel::parse_subdir(&self.subdir)?;
        let platform = oci_platform(subdir);
        let target_prefix = absolute_prefix(&self.target_prefix)?;
        let user = self.settings.user_spec().map_err(Error::Settings)?;
        let cache_dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => rattler_cache::default_cache_dir()
                .map_err(|e| crate::conda::Error::CacheDir(e.to_string()))?,
        };

        let reporter = self.reporter.as_ref();
        let base = self.read_base(subdir, &platform).await?;
        self.check_cancel()?;

        let client = solve::http_client();
        let gateway = solve::gateway(&cache_dir, client.clone());
        let records = self.resolve(&gateway, subdir, &base).await?;
        reporter.stage_finished(Stage::Solve, &format!("{} packages", records.len()));
        self.check_cancel()?;

        reporter.stage_started(Stage::Install, &format!("{} packages", records.len()));
        reporter.install_started(records.len());
        let options = InstallOptions {
            cache_dir,
            subdir,
            target_prefix: target_prefix.clone(),
        };
        let staged =
            install::install(records.clone(), &options, client, self.reporter.clone()).await?;
        let package_list = crate::conda::lock::explicit_text(&records, subdir);
        let list_path = staged.path().join(PACKAGE_LIST);
        std::fs::write(&list_path, &package_list)
            .map_err(crate::conda::Error::io("writing", &list_path))?;
        let activation = install::activation_variables(staged.path())?;
        reporter.stage_finished(Stage::Install, &format!("{} packages", records.len()));
        self.check_cancel()?;

        let budget = MAX_LAYERS.saturating_sub(base.layers().len() + usize::from(user.is_some()));
        let plan = plan_layers(staged.path(), &records, self.strategy, budget)?;
        let epoch = self
            .source_date_epoch
            .or_else(|| plan.groups.iter().filter_map(|g| g.timestamp).max())
            .unwrap_or(0);
        let owner = match (&user, self.settings.writable_prefix) {
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
        let mut image = assemble(base, &staged, &plan, epoch, self.source_date_epoch, owner)?;
        if let Some(u) = &user {
            image
                .add_user(&u.name, u.uid, u.gid, epoch, &self.cancel)
                .map_err(|e| match e {
                    crate::image::Error::Unsupported(reason) => Error::Settings(reason),
                    other => Error::Image(other),
                })?;
        }
        self.configure(&mut image, &activation, &package_list)?;
        Ok(BuiltImage {
            image,
            records,
            plan,
            _staged: staged,
        })
    }

    /// Reads the base image and checks it is for `platform`.
    async fn read_base(&self, subdir: Subdir, platform: &Platform) -> Result<Image, Error> {
        let reporter = self.reporter.as_ref();
        reporter.stage_started(Stage::ReadBase, &self.base);
        let base_location = Location::parse_source(&self.base)?;
        let remote = Remote {
            options: self.base_options.clone().unwrap_or_default(),
            cache: self.blob_cache(),
        };
        let base = transport::read(&base_location, platform, &remote, &self.cancel)
            .await
            .map_err(|source| Error::Base {
                base: self.base.clone(),
                source,
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

    /// The exact packages to install: solved, looked up from a lockfile, or as given.
    async fn resolve(
        &self,
        gateway: &rattler_repodata_gateway::Gateway,
        subdir: Subdir,
        base: &Image,
    ) -> Result<Vec<RepoDataRecord>, Error> {
        let reporter = self.reporter.as_ref();
        Ok(match &self.packages {
            Packages::Specs(specs) => {
                reporter.stage_started(Stage::Solve, &specs.join(" "));
                let parsed = solve::parse_specs(specs)?;
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                let channels = self
                    .channels
                    .iter()
                    .map(|c| channel::parse_channel(c, &cwd, subdir))
                    .collect::<Result<Vec<_>, _>>()?;
                let virtual_packages = self.virtual_packages(subdir, base)?;
                solve::solve(gateway, &channels, subdir, parsed, virtual_packages).await?
            }
            Packages::Locked(locked) => {
                reporter.stage_started(Stage::Solve, &format!("{} locked packages", locked.len()));
                crate::conda::lock::records(gateway, locked).await?
            }
            Packages::Records(records) => {
                reporter.stage_started(Stage::Solve, &format!("{} packages", records.len()));
                solve::sort_by_dependency(records.clone())
            }
        })
    }

    /// Sets the environment, the package-list label and the image settings in the config.
    fn configure(
        &self,
        image: &mut Image,
        activation: &BTreeMap<String, String>,
        package_list: &str,
    ) -> Result<(), Error> {
        let run = &mut image.config_mut().config;
        run.set_env_var(
            "CONDA_DEFAULT_ENV",
            self.env_name.as_deref().unwrap_or("base"),
        );
        for (k, v) in activation.iter().chain(&self.variables) {
            run.set_env_var(k, v);
        }
        run.labels.get_or_insert_with(BTreeMap::new).insert(
            PACKAGES_LABEL.to_string(),
            crate::image::Digest::of(package_list.as_bytes()).to_string(),
        );
        self.settings.apply(image).map_err(Error::Settings)
    }

    /// The virtual packages the solve assumes for an image on `base`.
    fn virtual_packages(
        &self,
        subdir: Subdir,
        base: &Image,
    ) -> Result<Vec<GenericVirtualPackage>, Error> {
        let mut overrides = self.virtual_packages.clone();
        for (env, name) in [
            ("CONDA_OVERRIDE_GLIBC", "__glibc"),
            ("CONDA_OVERRIDE_CUDA", "__cuda"),
        ] {
            if let Ok(v) = std::env::var(env)
                && !v.is_empty()
            {
                overrides.entry(name.to_string()).or_insert(v);
            }
        }
        let glibc = match overrides.remove("__glibc") {
            Some(v) => v,
            None => crate::image::files::glibc_version(base, &self.cancel)?
                .unwrap_or_else(|| DEFAULT_GLIBC.to_string()),
        };
        solve::virtual_packages(subdir, &glibc, &overrides).map_err(Error::Conda)
    }

    fn check_cancel(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

fn absolute_prefix(prefix: &Path) -> Result<PathBuf, Error> {
    if !prefix.is_absolute()
        || prefix
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(crate::conda::Error::Platform {
            platform: prefix.display().to_string(),
            reason: "--target-prefix must be an absolute path without `..`, e.g. /opt/conda".into(),
        }
        .into());
    }
    Ok(prefix.to_path_buf())
}

/// Puts the planned layers on the base and sets the environment in the config.
fn assemble(
    mut image: Image,
    staged: &StagedPrefix,
    plan: &LayerPlan,
    created: u64,
    clamp: Option<u64>,
    owner: Option<Ownership>,
) -> Result<Image, Error> {
    let prefix = staged.target_prefix();
    let in_image = prefix.strip_prefix("/").unwrap_or(prefix);
    for group in &plan.groups {
        let mtime = group
            .timestamp
            .unwrap_or(created)
            .min(clamp.unwrap_or(u64::MAX));
        let entries = group
            .paths
            .iter()
            .map(|rel| {
                let source = staged.path().join(rel);
                Entry::from_fs(&source, in_image.join(rel))
                    .map_err(crate::image::Error::io("reading", &source))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let comment = (!group.packages.is_empty()).then(|| group.packages.join(" "));
        image.push_layer(
            Layer::from_tar_source(
                Arc::new(EntriesLayer {
                    entries,
                    mtime,
                    owner: owner.clone(),
                }),
                group.description.clone(),
            ),
            History {
                created: Some(rfc3339(created)),
                created_by: Some(format!("conda-docker: {}", group.description)),
                comment,
                ..Default::default()
            },
        );
    }
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
    Ok(image)
}

/// A built image, with the packages in it; the layers read from a staging directory that lives
/// as long as this value.
#[derive(Debug)]
pub struct BuiltImage {
    image: Image,
    records: Vec<RepoDataRecord>,
    plan: LayerPlan,
    _staged: StagedPrefix,
}

impl BuiltImage {
    /// The image.
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The image, to edit before writing.
    pub fn image_mut(&mut self) -> &mut Image {
        &mut self.image
    }

    /// The installed packages, dependencies first.
    pub fn records(&self) -> &[RepoDataRecord] {
        &self.records
    }

    /// How the environment was split into layers.
    pub fn plan(&self) -> &LayerPlan {
        &self.plan
    }
}
