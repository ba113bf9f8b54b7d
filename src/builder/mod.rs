//! The builder: specs and a base image in, an image out, as a pipeline of stages, each a
//! function from one plain value to the next (one file each):
//!
//! 1. [`prepare`]: the settings checked, the base read, the exact packages resolved
//!    ([`prepare::Prepared`]);
//! 2. [`contents`]: what each package holds and where its files go ([`contents::Environment`]);
//! 3. [`wheels`]: the PyPI wheels resolved, fetched and installed over it;
//! 4. [`plan`]: every layer planned with its key ([`plan::Plan`]; `--dry-run` prints its
//!    groups);
//! 5. [`lookup`]: which layers a cache has already;
//! 6. [`fetch`]: the packages of the layers nobody has;
//! 7. [`compose`]: those layers made, in parallel;
//! 8. [`assemble`]: base, layers, config and annotations into an image;
//! 9. [`job`]: every platform built over one [`Context`] and every output written.
//!
//! ```no_run
//! # async fn demo() -> Result<(), conda_docker::builder::Error> {
//! use conda_docker::builder::{Builder, Context};
//! use conda_docker::input::Input;
//! let built = Builder::new()
//!     .with_channels(["conda-forge"])
//!     .with_base("docker-archive:base.tar")
//!     .build(&Context::new(), &Input::specs(["bzip2"]))
//!     .await?;
//! println!("{} layers", built.image().layers().len());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use rattler_conda_types::{RepoDataRecord, Subdir};

use crate::conda::channel::Sources;
use crate::conda::contents::ContentsCache;
use crate::conda::place::{Clobber, Trim};
use crate::conda::plan::{LayerPlan, LayeringStrategy, MAX_LAYERS};
use crate::image::Image;
use crate::input::Input;
use crate::settings::ImageSettings;
use crate::store::{BlobCache, Store};
use crate::transport::registry::RegistryOptions;

mod assemble;
pub mod compose;
mod contents;
mod context;
mod dry_run;
mod error;
mod fetch;
pub mod job;
mod lookup;
mod plan;
mod prepare;
pub mod pypi;
pub mod remote;
mod wheels;

pub use context::Context;
pub use dry_run::{Download, DryRun, PlannedSource, PlannedWheel};
pub use error::Error;
pub use job::{Job, Outcome};
pub use lookup::LayerFrom;

pub use crate::describe::{PACKAGE_LIST, PACKAGES_LABEL};

/// How many packages are fetched or read at once.
const CONCURRENT_PACKAGES: usize = 8;

/// The glibc version assumed for the image when nothing says otherwise (conda-forge's minimum).
pub const DEFAULT_GLIBC: &str = "2.17";

/// Where the environment lives in the image unless told otherwise.
pub const DEFAULT_PREFIX: &str = "/opt/conda";

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
    store_root: Option<PathBuf>,
    source_date_epoch: Option<u64>,
    base_options: Option<RegistryOptions>,
    settings: ImageSettings,
    virtual_packages: BTreeMap<String, String>,
    sources: Sources,
    sbom: bool,
    allow_unhashed_pypi: bool,
    pypi_locations: crate::pypi::index::Locations,
    pypi_http: crate::pypi::index::HttpOptions,
    working_dir: PathBuf,
    cache_from: Vec<crate::image::Reference>,
    cache_options: Option<RegistryOptions>,
    verify_cache: bool,
    /// Hash every cached blob a lookup finds (set for the second run after a damaged one).
    rehash_blobs: bool,
    /// The compressions the job's outputs want, each composed layer stored in them too.
    compress_layers: Vec<crate::image::LayerCompression>,
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
            target_prefix: PathBuf::from(DEFAULT_PREFIX),
            strategy: LayeringStrategy::Auto,
            max_layers: MAX_LAYERS,
            trim: Trim::default(),
            cache_dir: None,
            store_root: None,
            rehash_blobs: false,
            compress_layers: Vec::new(),
            source_date_epoch: None,
            base_options: None,
            settings: ImageSettings::default(),
            virtual_packages: BTreeMap::new(),
            sources: Sources::new(),
            sbom: true,
            allow_unhashed_pypi: false,
            pypi_locations: Default::default(),
            pypi_http: Default::default(),
            working_dir: PathBuf::from("."),
            cache_from: Vec::new(),
            cache_options: None,
            verify_cache: false,
        }
    }

    /// Where channels' packages are fetched from (mirrors, names of local channels). By
    /// default, every channel from where it is, a local one recorded as its `file://` URL.
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

    /// Where `pip:` requirements are looked up, over those set before and over what the requirements themselves say: an index URL given
    /// here wins, extra indexes and find-links add up (see [`crate::pypi::index::Locations::over`]).
    /// By default, PyPI.
    pub fn with_pypi_index(mut self, locations: crate::pypi::index::Locations) -> Self {
        self.pypi_locations = locations.over(&self.pypi_locations);
        self
    }

    /// How PyPI indexes are talked to (timeouts and the low-speed limit, extra CA
    /// certificates), all of it.
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

    /// Where relative paths (local channels) are found from. By default, the process's
    /// current directory (`.`).
    pub fn with_working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// The most layers the image may have, the base's included.
    pub fn max_layers(&self) -> usize {
        self.max_layers
    }

    /// The base image (`scratch`, `docker-archive:PATH`, `oci:DIR[:TAG]`). By default, `scratch`.
    pub fn with_base(mut self, base: impl Into<String>) -> Self {
        self.base = base.into();
        self
    }

    /// Where the environment lives in the image. By default, the input's `target-prefix`,
    /// else `/opt/conda` (left at `/opt/conda`, the input's wins).
    pub fn with_target_prefix(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.target_prefix = prefix.into();
        self
    }

    /// How packages are split into layers. By default, the input's `layering`, else
    /// [`LayeringStrategy::Auto`] (left at `auto`, the input's wins).
    pub fn with_layering(mut self, strategy: LayeringStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The most layers the image may have, the base's included. By default, the input's
    /// `max-layers`, else [`MAX_LAYERS`] (left at it, the input's wins).
    pub fn with_max_layers(mut self, max_layers: usize) -> Self {
        self.max_layers = max_layers;
        self
    }

    /// Which files are left out. By default, the input's `trim`, else static libraries and
    /// `*.js.map` ([`Trim::default`]; left at it, the input's wins).
    pub fn with_trim(mut self, trim: Trim) -> Self {
        self.trim = trim;
        self
    }

    /// The package cache root. By default, rattler's shared cache (as pixi uses).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// A fixed creation time, seconds since the epoch (`SOURCE_DATE_EPOCH`, as
    /// [`crate::request::BuildRequest::resolve`] reads it). By default, the newest package's build time.
    pub fn with_source_date_epoch(mut self, epoch: Option<u64>) -> Self {
        self.source_date_epoch = epoch;
        self
    }

    /// Remote layer caches: images conda-docker pushed before, or cache artifacts, whose
    /// layers are taken by key instead of being made (see [`remote`]), reached with
    /// `options` (credentials looked up per registry). A cache that cannot be read is a
    /// warning. By default, none.
    pub fn with_cache_from(
        mut self,
        references: impl IntoIterator<Item = crate::image::Reference>,
        options: RegistryOptions,
    ) -> Self {
        self.cache_from = references.into_iter().collect();
        self.cache_options = Some(options);
        self
    }

    /// Whether a layer found in a remote cache is checked before it is trusted: made here from
    /// its packages too, and compared by diff_id; one that differs is named in a warning and
    /// the image gets the layer made here. By default, no (the cache is trusted as the image's
    /// own repository is).
    pub fn with_verify_cache(mut self, verify: bool) -> Self {
        self.verify_cache = verify;
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
        self.store()
            .blobs()
            .verifying(self.rehash_blobs)
            .compressing(self.compress_layers.clone())
    }

    /// The store's lock, shared, held while a build runs so `cache prune` waits for it (one
    /// line when the build must wait for a prune).
    pub(crate) fn lock_store(&self, ctx: &Context) -> Option<crate::store::StoreLock> {
        self.store().lock(false, || {
            ctx.reporter()
                .warning("waiting for `conda-docker cache prune` to finish");
        })
    }

    /// The blob cache a build of `ctx` uses: each damaged blob it drops is a warning.
    pub(crate) fn blobs(&self, ctx: &Context) -> BlobCache {
        self.blob_cache().reporting(ctx.reporter_arc())
    }

    /// Where conda-docker's own caches (blobs, layer keys, contents, wheels) live. By
    /// default, the cache dir when one was given, else [`Store::default_root`] of an empty
    /// environment (the system's temporary directory): front ends set it from their
    /// environment ([`crate::request::BuildRequest::resolve`]).
    pub fn with_store_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.store_root = Some(root.into());
        self
    }

    /// The store: [`Self::with_store_root`]'s, else under the cache dir.
    pub(crate) fn store(&self) -> Store {
        match &self.store_root {
            Some(root) => Store::new(root),
            None => Store::at(self.cache_dir.as_deref(), &crate::env::Env::default()),
        }
    }

    /// Checks the settings that need no input.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.max_layers < 2 {
            return Err(Error::MaxLayers(self.max_layers));
        }
        crate::settings::target_prefix(&self.target_prefix)?;
        Ok(())
    }

    /// The root of conda-docker's own caches (the wheel cache is its `pypi-v1/`).
    pub(crate) fn cache_root(&self) -> PathBuf {
        self.store().root().to_path_buf()
    }

    /// The cache of what each package holds, beside the blob cache.
    pub(crate) fn contents_cache(&self) -> ContentsCache {
        ContentsCache::new(&self.store().contents_dir())
    }

    /// Resolves the environment, composes its layers from the packages (or takes them from the
    /// layer caches) and puts them on the base image, for this builder's platform. Every layer
    /// of the image is on this machine (a layer found in a remote cache is pulled).
    pub async fn build(&self, ctx: &Context, input: &Input) -> Result<BuiltImage, Error> {
        self.build_for(ctx, input, self.subdir, None).await
    }

    /// [`Self::build`] for `subdir`: the pipeline, stage by stage. A layer found in a remote
    /// cache of the registry `keep_in` (where every output goes) stays there, to be mounted.
    pub(crate) async fn build_for(
        &self,
        ctx: &Context,
        input: &Input,
        subdir: Subdir,
        keep_in: Option<&str>,
    ) -> Result<BuiltImage, Error> {
        let _store = self.lock_store(ctx);
        let prepared = prepare::prepare(self, ctx, input, subdir).await?;
        let blobs = self.blobs(ctx);
        blobs.remove_stale();
        let fetcher = prepared.fetcher(self, ctx);
        let cache_lock = fetcher.lock().await?;
        let platform = crate::platform::oci_platform(subdir);
        let mut caches = remote::read(self, ctx, &platform).await?;
        let stages = Stages {
            b: self,
            ctx,
            input,
            prepared: &prepared,
            fetcher: &fetcher,
            keep_in,
        };
        let (env, wheels, plan, stored) = loop {
            match stages.layers(&caches).await? {
                Layers::Made(made) => break *made,
                Layers::Disagree(keys) => {
                    ctx.reporter().warning(&format!(
                        "the layer caches describe {} package(s) otherwise than the packages \
                         do ({}); planning again from the packages themselves",
                        keys.len(),
                        keys.join(", ")
                    ));
                    caches.forget(&keys);
                }
            }
        };
        drop(cache_lock);
        let image = assemble::assemble(self, ctx, input, &prepared, &env, &plan, &stored)?;
        let layer_sources = layer_sources(&image, prepared.base.layers().len(), &stored);
        Ok(BuiltImage {
            layer_sources,
            image,
            recorded: plan.recorded,
            sbom: plan.sbom,
            cache_record: plan.cache_record,
            records: env.records,
            pypi: wheels
                .as_ref()
                .map(|(w, _)| pypi::locked(w))
                .unwrap_or_default(),
            plan: plan.groups,
            clobbers: env.placement.clobbers,
            trimmed_bytes: env.placement.trimmed_bytes,
        })
    }
}

/// Where each layer of `image` came from: its first `base` from the base, then the planned
/// layers as `stored` says, and the rest (the files no package owns, the user) made now.
fn layer_sources(image: &Image, base: usize, stored: &[Option<lookup::Found>]) -> Vec<LayerFrom> {
    let planned = stored.iter().map(|f| {
        f.as_ref()
            .map_or(LayerFrom::Built, lookup::Found::layer_from)
    });
    let mut sources: Vec<LayerFrom> = std::iter::repeat_n(LayerFrom::Base, base)
        .chain(planned)
        .collect();
    sources.resize(image.layers().len(), LayerFrom::Built);
    sources
}

/// What stages 2-7 share for one platform.
struct Stages<'a> {
    b: &'a Builder,
    ctx: &'a Context,
    input: &'a Input,
    prepared: &'a prepare::Prepared,
    fetcher: &'a crate::conda::fetch::Fetcher,
    keep_in: Option<&'a str>,
}

/// Every layer planned and in a cache, or the packages a remote cache described wrongly.
enum Layers {
    /// The environment, its wheels, its plan and where each layer is.
    Made(Box<Made>),
    /// The contents keys of packages whose remote description disagrees with the package.
    Disagree(Vec<String>),
}

type Made = (
    contents::Environment,
    Option<wheels::Wheels>,
    plan::Plan,
    Vec<Option<lookup::Found>>,
);

impl Stages<'_> {
    /// Stages 2-7: contents, wheels, plan, lookup (local, then remote), fetch, compose.
    async fn layers(&self, caches: &remote::Caches) -> Result<Layers, Error> {
        let (b, ctx) = (self.b, self.ctx);
        let mut env = contents::read(b, ctx, self.prepared, self.fetcher, caches).await?;
        let wheels = wheels::install(b, ctx, self.input, self.prepared, &env).await?;
        let mut plan = plan::plan(b, self.input, self.prepared, &env, wheels.as_ref());
        let blobs = b.blobs(ctx);
        plan.cache_record = remote::kept_record(&env, &blobs);
        let mut stored = lookup::lookup(&plan, &blobs, caches);
        let keys: Vec<_> = plan.layers.iter().map(|l| l.key.clone()).collect();
        let to_verify = remote::set_aside(b, &mut stored);
        remote::take(b, ctx, &keys, &mut stored, self.keep_in).await?;
        let dirs = fetch::fetch_missing(ctx, &plan, &stored, &mut env, self.fetcher).await?;
        let differ = contents::confirm(b, &env, &dirs.sources)?;
        if !differ.is_empty() {
            return Ok(Layers::Disagree(differ));
        }
        ctx.check_cancel()?;
        compose::make_missing(
            &plan,
            &env,
            wheels.as_ref(),
            &dirs,
            &mut stored,
            &blobs,
            ctx,
        )?;
        remote::verify(ctx, &plan, &stored, &to_verify);
        Ok(Layers::Made(Box::new((env, wheels, plan, stored))))
    }
}

/// An environment's SBOMs and provenance, as the image holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sbom {
    /// The SPDX 2.3 JSON document.
    pub spdx: Vec<u8>,
    /// The CycloneDX 1.6 JSON document.
    pub cyclonedx: Vec<u8>,
    /// The in-toto statement (SLSA Provenance v1) of how it was built.
    pub provenance: Vec<u8>,
}

impl Sbom {
    /// The document in `format`.
    pub fn document(&self, format: crate::describe::sbom::Format) -> &[u8] {
        match format {
            crate::describe::sbom::Format::Spdx => &self.spdx,
            crate::describe::sbom::Format::CycloneDx => &self.cyclonedx,
        }
    }
}

/// A built image, with the packages in it; its package layers are blobs in the blob cache.
#[derive(Debug)]
pub struct BuiltImage {
    image: Image,
    recorded: crate::settings::Recorded,
    sbom: Option<Sbom>,
    cache_record: Vec<u8>,
    layer_sources: Vec<LayerFrom>,
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

    /// What the image was built from beyond its packages (name, variables, settings), as
    /// its package list and lockfiles record it.
    pub fn recorded(&self) -> &crate::settings::Recorded {
        &self.recorded
    }

    /// The SBOMs the image holds, unless built without.
    pub fn sbom(&self) -> Option<&Sbom> {
        self.sbom.as_ref()
    }

    /// What to attach beside the image as OCI referrers: its SBOMs and provenance statement
    /// (none without), and its cache record, which makes the image a layer cache (see
    /// [`remote`]).
    pub fn referrers(&self) -> Vec<crate::image::referrer::Artifact> {
        use crate::describe::sbom::Format;
        let created = self.image.config().created.clone().unwrap_or_default();
        let sbom = self.sbom.iter().flat_map(|sbom| {
            [
                (Format::Spdx.media_type(), sbom.document(Format::Spdx)),
                (
                    Format::CycloneDx.media_type(),
                    sbom.document(Format::CycloneDx),
                ),
                (
                    crate::describe::provenance::MEDIA_TYPE,
                    &sbom.provenance[..],
                ),
            ]
        });
        sbom.chain([(remote::RECORD_TYPE, &self.cache_record[..])])
            .map(|(media_type, bytes)| crate::image::referrer::Artifact {
                artifact_type: media_type.to_string(),
                bytes: bytes.to_vec(),
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

    /// Where each of the image's layers came from (the base, the layer cache, a remote
    /// cache, or this build), bottom first.
    pub fn layer_sources(&self) -> &[LayerFrom] {
        &self.layer_sources
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
