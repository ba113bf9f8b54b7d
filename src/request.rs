//! A build as plain data: everything a front end can set, filled by the command line from its
//! flags and by the Python package from its keywords, and resolved once ([`BuildRequest::resolve`])
//! into the [`Builder`] (how to build) and the [`Job`] (what to build and where it goes).
//!
//! ```
//! use conda_docker::env::Env;
//! use conda_docker::request::BuildRequest;
//! let request = BuildRequest {
//!     specs: vec!["bzip2".into()],
//!     outputs: vec!["docker-archive:bzip2.tar".into()],
//!     max_layers: 20,
//!     ..BuildRequest::default()
//! };
//! let (builder, job) = request.resolve(&Env::new([("HOME", "/home/me")], "/work")).unwrap();
//! assert_eq!(builder.max_layers(), 20);
//! assert_eq!(job.outputs.len(), 1);
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::builder::{Builder, Job};
use crate::conda::channel::Sources;
use crate::conda::place::Trim;
use crate::conda::plan::{LayeringStrategy, MAX_LAYERS};
use crate::env::Env;
use crate::http::Timeouts;
use crate::image::{LayerCompression, Reference};
use crate::input::Source;
use crate::pypi::index::{HttpOptions, Locations};
use crate::settings::ImageSettings;
use crate::transport::registry::{Credential, RegistryOptions};
use crate::transport::{Location, WriteOptions};

/// Everything a front end can set for a build, as plain data (each field is the command-line
/// option of the same name; see `docs/cli.md`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
// Not `deny_unknown_fields`: serde does not take it with `flatten`.
#[serde(default)]
pub struct BuildRequest {
    /// Conda match specs.
    pub specs: Vec<String>,
    /// An environment file or a lockfile.
    pub file: Option<PathBuf>,
    /// The lockfile environment to build.
    pub environment: String,
    /// An existing environment, by path.
    pub prefix: Option<PathBuf>,
    /// An existing environment, by name.
    pub name: Option<String>,
    /// Channels, highest priority first.
    pub channels: Vec<String>,
    /// `CHANNEL=MIRROR` pairs.
    pub mirrors: Vec<String>,
    /// `NAME=DIR` pairs: the channel a local directory is a copy of.
    pub channel_names: Vec<String>,
    /// Conda platforms, one image each (none: `linux-64`).
    pub platforms: Vec<String>,
    /// The base image.
    pub base: String,
    /// Names the images get.
    pub images: Vec<String>,
    /// Where the images are written.
    pub outputs: Vec<String>,
    /// Where the environment lives in the image.
    pub target_prefix: PathBuf,
    /// `auto`, `layered` or `single`.
    pub layering_strategy: String,
    /// The most layers the image may have.
    pub max_layers: usize,
    /// Trim groups (none: the default groups).
    pub trim: Vec<String>,
    /// Keep every file.
    pub no_trim: bool,
    /// `gzip`, `zstd` or `none`, with an optional level.
    pub compression: String,
    /// Entrypoint, command, labels, user and the like (over the input's).
    #[serde(flatten)]
    pub image: ImageSettings,
    /// Virtual package overrides for the solve (`__glibc` = `2.28`).
    pub virtual_packages: BTreeMap<String, String>,
    /// Whether the image gets SBOMs.
    pub sbom: bool,
    /// Install locked wheels without a sha256.
    pub allow_unhashed_pypi: bool,
    /// The PyPI index for `pip:` sections.
    pub pypi_index_url: Option<String>,
    /// Extra PyPI indexes.
    pub pypi_extra_index_url: Vec<String>,
    /// Directories or pages of wheels.
    pub find_links: Vec<String>,
    /// Where the lockfile of what was built goes.
    pub lock_output: Option<PathBuf>,
    /// Where the SBOMs go, beside the image.
    pub sbom_dir: Option<PathBuf>,
    /// The cache root.
    pub cache_dir: Option<PathBuf>,
    /// `USER:PASS` for the base image's registry.
    pub base_creds: Option<String>,
    /// `USER:PASS` for the registries written to.
    pub creds: Option<String>,
    /// Plain HTTP and unverified TLS allowed.
    pub insecure: bool,
    /// Extra certificates, as `certs.d` holds them.
    pub cert_dir: Option<PathBuf>,
    /// How long a server may stay silent, in seconds.
    pub timeout: Option<f64>,
    /// How long a transfer may stay under the low-speed limit, in seconds.
    pub low_speed_time: Option<f64>,
    /// The low-speed limit in bytes per second (0: off).
    pub low_speed_limit: Option<u64>,
    /// A fixed creation time (seconds since the epoch), over `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<u64>,
    /// Remote layer caches: images pushed before, or cache artifacts (none:
    /// `CONDA_DOCKER_CACHE_FROM`, references separated by commas or spaces).
    pub cache_from: Vec<String>,
    /// A layer cache to write the build's layers to: `REF[,max-entries=N]` (none:
    /// `CONDA_DOCKER_CACHE_TO`).
    pub cache_to: Option<String>,
    /// Check each layer found in a remote cache against its packages before trusting it.
    pub verify_cache: bool,
}

impl Default for BuildRequest {
    fn default() -> Self {
        Self {
            specs: Vec::new(),
            file: None,
            environment: "default".into(),
            prefix: None,
            name: None,
            channels: Vec::new(),
            mirrors: Vec::new(),
            channel_names: Vec::new(),
            platforms: Vec::new(),
            base: "debian:stable-slim".into(),
            images: Vec::new(),
            outputs: Vec::new(),
            target_prefix: PathBuf::from("/opt/conda"),
            layering_strategy: "auto".into(),
            max_layers: MAX_LAYERS,
            trim: Vec::new(),
            no_trim: false,
            compression: LayerCompression::default().to_string(),
            image: ImageSettings::default(),
            virtual_packages: BTreeMap::new(),
            sbom: true,
            allow_unhashed_pypi: false,
            pypi_index_url: None,
            pypi_extra_index_url: Vec::new(),
            find_links: Vec::new(),
            lock_output: None,
            sbom_dir: None,
            cache_dir: None,
            base_creds: None,
            creds: None,
            insecure: false,
            cert_dir: None,
            timeout: None,
            low_speed_time: None,
            low_speed_limit: None,
            source_date_epoch: None,
            cache_from: Vec::new(),
            cache_to: None,
            verify_cache: false,
        }
    }
}

/// A setting of a [`BuildRequest`], named in errors; each front end says it in its own words
/// ([`Setting::flag`] on the command line, [`Setting::keyword`] in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// [`BuildRequest::specs`], `file`, `prefix`, `name`: what to build.
    Source,
    /// [`BuildRequest::platforms`].
    Platform,
    /// [`BuildRequest::images`].
    Image,
    /// [`BuildRequest::outputs`].
    Output,
    /// [`BuildRequest::mirrors`] and [`BuildRequest::channel_names`].
    Mirror,
    /// [`BuildRequest::layering_strategy`].
    LayeringStrategy,
    /// [`BuildRequest::max_layers`].
    MaxLayers,
    /// [`BuildRequest::trim`].
    Trim,
    /// [`BuildRequest::compression`].
    Compression,
    /// [`BuildRequest::user`].
    User,
    /// [`BuildRequest::lock_output`].
    LockOutput,
    /// [`BuildRequest::sbom_dir`].
    SbomDir,
    /// [`BuildRequest::base_creds`].
    BaseCreds,
    /// [`BuildRequest::creds`].
    Creds,
    /// [`BuildRequest::timeout`], `low_speed_time`.
    Timeout,
    /// [`BuildRequest::cache_from`].
    CacheFrom,
    /// [`BuildRequest::cache_to`].
    CacheTo,
    /// `SOURCE_DATE_EPOCH`, the config file and the other variables a build reads.
    Environment,
    /// [`ImageSettings::files`].
    Add,
}

impl Setting {
    /// The command line's name of it (`--max-layers`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::Source => "--file",
            Self::Platform => "--platform",
            Self::Image => "--image",
            Self::Output => "--output",
            Self::Mirror => "--mirror",
            Self::LayeringStrategy => "--layering-strategy",
            Self::MaxLayers => "--max-layers",
            Self::Trim => "--trim",
            Self::Compression => "--compression",
            Self::User => "--user",
            Self::LockOutput => "--lock-output",
            Self::SbomDir => "--sbom-dir",
            Self::BaseCreds => "--base-creds",
            Self::Creds => "--creds",
            Self::Timeout => "--timeout",
            Self::CacheFrom => "--cache-from",
            Self::CacheTo => "--cache-to",
            Self::Environment => "the environment",
            Self::Add => "--add",
        }
    }

    /// The Python keyword of it (`max_layers=`).
    pub fn keyword(self) -> &'static str {
        match self {
            Self::Source => "file=",
            Self::Platform => "platforms=",
            Self::Image => "images=",
            Self::Output => "outputs=",
            Self::Mirror => "mirrors=",
            Self::LayeringStrategy => "layering_strategy=",
            Self::MaxLayers => "max_layers=",
            Self::Trim => "trim=",
            Self::Compression => "compression=",
            Self::User => "user=",
            Self::LockOutput => "lock_output=",
            Self::SbomDir => "sbom_dir=",
            Self::BaseCreds => "base_creds=",
            Self::Creds => "creds=",
            Self::Timeout => "timeout=",
            Self::CacheFrom => "cache_from=",
            Self::CacheTo => "cache_to=",
            Self::Environment => "the environment",
            Self::Add => "add=",
        }
    }
}

/// A [`BuildRequest`] that cannot be resolved: which setting, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render(Words::Flags))]
pub struct Error {
    /// The setting at fault.
    pub setting: Setting,
    /// Whether the message names the setting first (else the cause names what is wrong).
    named: bool,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// How a front end names settings in its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Words {
    /// Command-line flags (`--max-layers`).
    Flags,
    /// Python keywords (`max_layers=`).
    Keywords,
}

impl Error {
    /// An error of `setting`, named before `source`'s message.
    fn named(
        setting: Setting,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            setting,
            named: true,
            source: source.into(),
        }
    }

    /// An error of `setting` whose cause says what is wrong on its own.
    fn bare(setting: Setting, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            setting,
            named: false,
            source: source.into(),
        }
    }

    /// The message, naming the setting in `words`.
    pub fn render(&self, words: Words) -> String {
        if !self.named {
            return self.source.to_string();
        }
        let name = match words {
            Words::Flags => self.setting.flag(),
            Words::Keywords => self.setting.keyword().trim_end_matches('='),
        };
        format!("{name}: {}", self.source)
    }
}

impl BuildRequest {
    /// The builder and job this request describes, with what `env` says (the config file,
    /// `SOURCE_DATE_EPOCH`, `CONDA_OVERRIDE_*`, `PIP_*`/`UV_*`, conda's environment dirs).
    pub fn resolve(&self, env: &Env) -> Result<(Builder, Job), Error> {
        let builder = self.builder(env)?;
        let job = Job {
            source: self.source(env)?,
            platforms: self
                .platforms
                .iter()
                .map(|p| {
                    crate::platform::parse_subdir(p).map_err(|e| Error::bare(Setting::Platform, e))
                })
                .collect::<Result<_, _>>()?,
            images: self
                .images
                .iter()
                .map(|i| {
                    i.parse::<Reference>()
                        .map_err(|e| Error::bare(Setting::Image, e))
                })
                .collect::<Result<_, _>>()?,
            outputs: self
                .outputs
                .iter()
                .map(|o| {
                    Location::parse_destination(o).map_err(|e| Error::bare(Setting::Output, e))
                })
                .collect::<Result<_, _>>()?,
            registry: self.registry(self.creds.as_deref(), Setting::Creds, env)?,
            write: WriteOptions {
                compression: self
                    .compression
                    .parse::<LayerCompression>()
                    .map_err(|e| Error::named(Setting::Compression, e))?,
            },
            lock_output: self.lock_output.clone(),
            sbom_dir: self.sbom_dir.clone(),
            cache_to: self
                .cache_to
                .as_deref()
                .or_else(|| env.var("CONDA_DOCKER_CACHE_TO").filter(|v| !v.is_empty()))
                .map(|to| {
                    to.parse::<crate::builder::remote::CacheTo>()
                        .map_err(|e| Error::named(Setting::CacheTo, e))
                })
                .transpose()?,
        };
        Ok((builder, job))
    }

    /// How to build: every setting of the request and of the environment.
    fn builder(&self, env: &Env) -> Result<Builder, Error> {
        let config =
            crate::settings::config_file(env).map_err(|e| Error::bare(Setting::Environment, e))?;
        let sources = Sources::configured(
            &self.mirrors,
            &self.channel_names,
            env.cwd(),
            config.as_deref(),
        )
        .map_err(|e| Error::bare(Setting::Mirror, e))?;
        let trim = Trim::from_groups(&self.trim, self.no_trim)
            .map_err(|e| Error::named(Setting::Trim, e))?;
        let layering = self
            .layering_strategy
            .parse::<LayeringStrategy>()
            .map_err(|e| Error::named(Setting::LayeringStrategy, e))?;
        let base_registry = self.registry(self.base_creds.as_deref(), Setting::BaseCreds, env)?;
        let locations = Locations::given(
            self.pypi_index_url.clone(),
            self.pypi_extra_index_url.clone(),
            &self.find_links,
            env.cwd(),
        );
        let mut virtual_packages = env_virtual_packages(env);
        virtual_packages.extend(self.virtual_packages.clone());
        let mut pypi_http = HttpOptions {
            timeouts: base_registry.timeouts,
            ..HttpOptions::default()
        };
        pypi_http
            .ca_certificates
            .extend(env.var("PIP_CERT").map(PathBuf::from));
        let epoch = match self.source_date_epoch {
            Some(epoch) => Some(epoch),
            None => source_date_epoch(env)?,
        };
        let mut builder = Builder::new()
            .with_channels(self.channels.clone())
            .with_base(self.base.clone())
            .with_target_prefix(self.target_prefix.clone())
            .with_layering(layering)
            .with_max_layers(self.max_layers)
            .with_trim(trim)
            .with_sources(sources)
            .with_sbom(self.sbom)
            .with_allow_unhashed_pypi(self.allow_unhashed_pypi)
            .with_pypi_index(locations.over(&env_locations(env)))
            .with_pypi_http(pypi_http)
            .with_settings(self.image.clone())
            .with_source_date_epoch(epoch)
            .with_base_registry(base_registry)
            .with_working_dir(env.cwd());
        for (name, version) in virtual_packages {
            builder = builder.with_virtual_package(name, version);
        }
        let cache_from = self.cache_from(env)?;
        if !cache_from.is_empty() {
            let options = self.registry(self.creds.as_deref(), Setting::Creds, env)?;
            builder = builder
                .with_cache_from(cache_from, options)
                .with_verify_cache(self.verify_cache);
        }
        builder =
            builder.with_store_root(crate::store::Store::at(self.cache_dir.as_deref(), env).root());
        if let Some(dir) = &self.cache_dir {
            builder = builder.with_cache_dir(dir.clone());
        }
        Ok(builder)
    }

    /// The remote layer caches: the request's, else `CONDA_DOCKER_CACHE_FROM`'s.
    fn cache_from(&self, env: &Env) -> Result<Vec<Reference>, Error> {
        let given: Vec<&str> = if self.cache_from.is_empty() {
            env.var("CONDA_DOCKER_CACHE_FROM")
                .unwrap_or_default()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .collect()
        } else {
            self.cache_from.iter().map(String::as_str).collect()
        };
        given
            .into_iter()
            .map(|r| {
                r.parse::<Reference>()
                    .map_err(|e| Error::named(Setting::CacheFrom, e))
            })
            .collect()
    }

    /// What to build: specs, a file or an existing environment (a named one found now).
    fn source(&self, env: &Env) -> Result<Source, Error> {
        Source::from_parts(
            self.specs.clone(),
            self.file.clone(),
            &self.environment,
            self.prefix.clone(),
            self.name.clone(),
            env,
        )
        .map_err(|e| Error::bare(Setting::Source, e))
    }

    /// How to reach a registry: `creds` (as `setting`), TLS, timeouts and what `env` says.
    fn registry(
        &self,
        creds: Option<&str>,
        setting: Setting,
        env: &Env,
    ) -> Result<RegistryOptions, Error> {
        let credential = creds
            .map(|c| {
                Credential::from_user_pass(c)
                    .ok_or_else(|| Error::named(setting, "takes USER:PASS"))
            })
            .transpose()?;
        let default = Timeouts::default();
        let seconds = |s: Option<f64>, fallback: Duration| -> Result<Duration, Error> {
            match s {
                None => Ok(fallback),
                Some(s) => {
                    Duration::try_from_secs_f64(s).map_err(|e| Error::named(Setting::Timeout, e))
                }
            }
        };
        Ok(RegistryOptions {
            insecure: self.insecure,
            credential,
            cert_dir: self.cert_dir.clone(),
            timeouts: Timeouts {
                timeout: seconds(self.timeout, default.timeout)?,
                low_speed_limit: self.low_speed_limit.unwrap_or(default.low_speed_limit),
                low_speed_time: seconds(self.low_speed_time, default.low_speed_time)?,
            },
            ..RegistryOptions::from_env(env)
        })
    }
}

/// `SOURCE_DATE_EPOCH`, as reproducible-builds tools read it.
fn source_date_epoch(env: &Env) -> Result<Option<u64>, Error> {
    let Some(v) = env.var("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    v.trim().parse::<u64>().map(Some).map_err(|_| {
        Error::bare(
            Setting::Environment,
            crate::settings::Error {
                setting: "SOURCE_DATE_EPOCH",
                value: v.to_string(),
                reason: "must be a whole number of seconds since 1970-01-01".into(),
            },
        )
    })
}

/// `CONDA_OVERRIDE_GLIBC` / `CONDA_OVERRIDE_CUDA`, as conda reads them.
fn env_virtual_packages(env: &Env) -> BTreeMap<String, String> {
    [
        ("CONDA_OVERRIDE_GLIBC", "__glibc"),
        ("CONDA_OVERRIDE_CUDA", "__cuda"),
    ]
    .into_iter()
    .filter_map(|(var, name)| Some((name.to_string(), env.var(var)?.to_string())))
    .collect()
}

/// The PyPI index as pip and uv read it: `PIP_INDEX_URL` or `UV_INDEX_URL`
/// (`UV_DEFAULT_INDEX`), `PIP_EXTRA_INDEX_URL` / `UV_EXTRA_INDEX_URL` / `UV_INDEX`
/// (space-separated, uv's entries may be named `name=URL`), `PIP_FIND_LINKS` /
/// `UV_FIND_LINKS`, `PIP_NO_INDEX` / `UV_NO_INDEX`.
fn env_locations(env: &Env) -> Locations {
    let list = |names: &[&str]| -> Vec<String> {
        env.first(names)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let extra = list(&["PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX"])
        .into_iter()
        .map(|u| match u.split_once('=') {
            Some((name, url)) if !name.contains("://") && url.contains("://") => url.to_string(),
            _ => u,
        })
        .collect();
    let mut locations = Locations::given(
        env.first(&["PIP_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"])
            .map(str::to_string),
        extra,
        &list(&["PIP_FIND_LINKS", "UV_FIND_LINKS"]),
        env.cwd(),
    );
    locations.no_index = env
        .first(&["PIP_NO_INDEX", "UV_NO_INDEX"])
        .is_some_and(|v| !matches!(v.trim(), "0" | "false" | "no" | "off"));
    locations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::new([("HOME", "/nonexistent")], "/work")
    }

    #[test]
    fn one_setting_travels_from_the_request_to_the_builder() {
        let request = BuildRequest {
            specs: vec!["bzip2".into()],
            max_layers: 7,
            platforms: vec!["linux-aarch64".into()],
            outputs: vec!["oci:out".into()],
            ..BuildRequest::default()
        };
        let (builder, job) = request.resolve(&env()).unwrap();
        assert_eq!(builder.max_layers(), 7);
        assert_eq!(job.platforms, [rattler_conda_types::Subdir::LinuxAarch64]);
        assert_eq!(job.outputs.len(), 1);
    }

    #[test]
    fn a_bad_setting_is_named_in_each_front_end_s_words() {
        let request = BuildRequest {
            specs: vec!["bzip2".into()],
            layering_strategy: "stacked".into(),
            ..BuildRequest::default()
        };
        let Err(e) = request.resolve(&env()) else {
            panic!("a bad strategy resolved");
        };
        assert_eq!(e.setting, Setting::LayeringStrategy);
        assert!(
            e.to_string().starts_with("--layering-strategy: `stacked`"),
            "{e}"
        );
        let python = e.render(Words::Keywords);
        assert!(
            python.starts_with("layering_strategy: `stacked`"),
            "{python}"
        );
        let err = crate::builder::Error::MaxLayers(1);
        assert!(err.to_string().starts_with("--max-layers 1:"), "{err}");
        let python = err.render(Words::Keywords);
        assert!(python.starts_with("max_layers=1:"), "{python}");
    }

    #[test]
    fn the_environment_fills_what_the_request_leaves_open() {
        let env = env()
            .with_var("SOURCE_DATE_EPOCH", "not a number")
            .with_var("CONDA_OVERRIDE_GLIBC", "2.28");
        let request = BuildRequest {
            specs: vec!["bzip2".into()],
            ..BuildRequest::default()
        };
        let Err(e) = request.resolve(&env) else {
            panic!("a bad SOURCE_DATE_EPOCH resolved");
        };
        assert!(e.to_string().contains("SOURCE_DATE_EPOCH"), "{e}");
        let request = BuildRequest {
            source_date_epoch: Some(5),
            ..request
        };
        assert!(request.resolve(&env).is_ok(), "the request's epoch wins");
    }

    #[test]
    fn a_request_reads_as_json_with_defaults_for_what_it_omits() {
        let request: BuildRequest =
            serde_json::from_str(r#"{"specs": ["zstd"], "max_layers": 9}"#).unwrap();
        assert_eq!(request.max_layers, 9);
        assert_eq!(request.target_prefix, PathBuf::from("/opt/conda"));
        let request: BuildRequest =
            serde_json::from_str(r#"{"user": "app", "writable_prefix": true}"#).unwrap();
        assert!(request.image.writable_prefix);
        assert_eq!(request.image.user.as_deref(), Some("app"));
    }
}
