//! Stage 1, prepare: the settings checked, the base image read, and the exact packages
//! resolved (solved, read from a lockfile, or as an environment holds them).

use std::path::PathBuf;

use rattler_conda_types::{GenericVirtualPackage, RepoDataRecord, Subdir};

use crate::conda::channel::Sources;
use crate::conda::place::Trim;
use crate::conda::plan::{LayeringStrategy, MAX_LAYERS};
use crate::conda::solve;
use crate::image::{Image, Platform};
use crate::input::{Input, Packages};
use crate::platform::oci_platform;
use crate::reporter::Stage;
use crate::settings::{ImageSettings, Recorded, UserSpec};
use crate::transport::{self, Location, Remote, Session};

use super::{Builder, Context, Error};

/// The glibc version assumed for the image when nothing says otherwise (conda-forge's minimum).
pub const DEFAULT_GLIBC: &str = "2.17";

/// What every build and plan starts with.
pub(crate) struct Prepared {
    /// The conda platform built for.
    pub subdir: Subdir,
    /// Where the environment lives in the image (checked).
    pub target_prefix: PathBuf,
    /// The input's settings under the builder's, checked.
    pub settings: ImageSettings,
    /// How packages are split into layers.
    pub strategy: LayeringStrategy,
    /// The most layers the image may have, the base's included.
    pub max_layers: usize,
    /// The files left out.
    pub trim: Trim,
    /// The user to add, if any.
    pub user: Option<UserSpec>,
    /// The package cache root.
    pub cache_dir: PathBuf,
    /// The base image.
    pub base: Image,
    /// The exact packages, as resolved.
    pub records: Vec<RepoDataRecord>,
    /// Where each channel's packages are fetched from.
    pub sources: Sources,
}

/// Checks the settings, reads the base and resolves the packages of `input` for `subdir`.
pub(crate) async fn prepare(
    b: &Builder,
    ctx: &Context,
    input: &Input,
    subdir: Subdir,
) -> Result<Prepared, Error> {
    if matches!(&input.packages, Packages::Specs(s) if s.is_empty()) {
        return Err(Error::NoSpecs);
    }
    b.check()?;
    let settings = input.settings.clone().merged_with(b.settings.clone());
    settings.validate()?;
    let default_prefix = PathBuf::from(super::DEFAULT_PREFIX);
    let target_prefix = crate::settings::target_prefix(&over(
        b.target_prefix.clone(),
        default_prefix,
        settings.target_prefix.clone(),
    ))?;
    let strategy = over(b.strategy, LayeringStrategy::Auto, settings.layering);
    let max_layers = over(b.max_layers, MAX_LAYERS, settings.max_layers);
    let trim = over(b.trim, Trim::default(), settings.trim()?);
    let user = settings.user_spec()?;
    let cache_dir = crate::conda::cache_root(b.cache_dir.as_deref())?;
    let base = read_base(b, ctx, subdir, &oci_platform(subdir)).await?;
    ctx.check_cancel()?;
    let gateway = solve::gateway(&cache_dir, ctx.client());
    let (records, sources) = resolve(b, ctx, input, &gateway, subdir, &base).await?;
    // Wheels need a python: refused now, before any package or wheel is downloaded.
    let has_python = records
        .iter()
        .any(|r| r.package_record.name.as_normalized() == "python");
    if !input.pypi.is_none() && !has_python {
        return Err(super::pypi::PypiError::NoPython.into());
    }
    ctx.reporter()
        .stage_finished(Stage::Solve, &format!("{} packages", records.len()));
    ctx.check_cancel()?;
    Ok(Prepared {
        subdir,
        target_prefix,
        settings,
        strategy,
        max_layers,
        trim,
        user,
        cache_dir,
        base,
        records,
        sources,
    })
}

/// The builder's value `given`, unless it is at its `default` and the input's settings
/// declare one: the command line wins over an environment file or lockfile when it says
/// something else than the default.
pub(crate) fn over<T: PartialEq>(given: T, default: T, declared: Option<T>) -> T {
    match declared {
        Some(d) if given == default => d,
        _ => given,
    }
}

impl Prepared {
    /// The fetcher of these packages: into their package cache, from their sources.
    pub(crate) fn fetcher(&self, b: &Builder, ctx: &Context) -> crate::conda::fetch::Fetcher {
        let store = b.store();
        crate::conda::fetch::Fetcher::new(
            &self.cache_dir,
            &store.archives_dir(),
            &store.tmp_dir(),
            ctx.client(),
            ctx.reporter_arc(),
            self.sources.clone(),
        )
        .with_timeouts(b.pypi_http.timeouts)
    }

    /// How many layers the packages may use: the image's limit less the base's layers, the
    /// user's, the top layer of files no package owns and one per `--add`.
    pub(crate) fn layer_budget(&self) -> usize {
        let taken = self.base.layers().len()
            + usize::from(self.user.is_some())
            + 1
            + self.settings.files.len();
        self.max_layers.saturating_sub(taken).max(1)
    }

    /// What the image is built from beyond its packages, as a lockfile records it: the
    /// input's name and variables, and the settings as resolved (each only when it is not
    /// the default, the layers' compression left to the job; the host files added on top are
    /// not the environment's, and are given again).
    pub(crate) fn recorded(&self, input: &Input) -> Recorded {
        let prefix = (self.target_prefix != std::path::Path::new(super::DEFAULT_PREFIX))
            .then(|| self.target_prefix.clone());
        let trim = (self.trim != Trim::default())
            .then(|| self.trim.names().into_iter().map(str::to_string).collect());
        Recorded {
            name: input.name.clone(),
            variables: input.variables.clone(),
            settings: ImageSettings {
                target_prefix: prefix,
                layering: (self.strategy != LayeringStrategy::Auto).then_some(self.strategy),
                max_layers: (self.max_layers != MAX_LAYERS).then_some(self.max_layers),
                trim,
                compression: None,
                files: Vec::new(),
                chown: false,
                ..self.settings.clone()
            },
        }
    }
}

/// Reads the base image and checks it is for `platform`.
async fn read_base(
    b: &Builder,
    ctx: &Context,
    subdir: Subdir,
    platform: &Platform,
) -> Result<Image, Error> {
    let reporter = ctx.reporter();
    reporter.stage_started(Stage::ReadBase, &b.base);
    let base_location = Location::parse_source(&b.base)?;
    let remote = Remote {
        options: b.base_options.clone().unwrap_or_default(),
        cache: b.blobs(ctx),
    };
    let read = Session::new(ctx.cancel())
        .with_remote(&remote)
        .with_reporter(reporter)
        .read(platform);
    let base = transport::read(&base_location, &read)
        .await
        .map_err(|source| Error::Base {
            base: b.base.clone(),
            source: Box::new(source),
        })?;
    if base_location != Location::Scratch && !platform.matches(&base.platform()) {
        return Err(Error::BasePlatform {
            base: b.base.clone(),
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
    b: &Builder,
    ctx: &Context,
    input: &Input,
    gateway: &rattler_repodata_gateway::Gateway,
    subdir: Subdir,
    base: &Image,
) -> Result<(Vec<RepoDataRecord>, Sources), Error> {
    let reporter = ctx.reporter();
    let mut sources = b.sources.clone();
    // The builder's channels win over the input's; with none named anywhere, conda-forge.
    let named = match (&b.channels, &input.channels) {
        (given, _) if !given.is_empty() => given.clone(),
        (_, from_input) if !from_input.is_empty() => from_input.clone(),
        _ => vec!["conda-forge".to_string()],
    };
    let channels = named
        .iter()
        .map(|c| sources.parse_channel(c, &b.working_dir, subdir))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &channels {
        sources.learn(c);
    }
    let records = match &input.packages {
        Packages::Specs(specs) => {
            reporter.stage_started(Stage::Solve, &specs.join(" "));
            let parsed = solve::parse_specs(specs)?;
            let fetch: Vec<_> = channels.iter().map(|c| c.fetch.clone()).collect();
            let virtual_packages = virtual_packages(b, ctx, subdir, base)?;
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
    warn_unnamed(ctx, input, &channels, &records);
    Ok((records, sources))
}

/// Warns once of the local channels no `--channel-name` or `--mirror` names: solved
/// against, their `file://` URLs are recorded; given with exact packages (a lockfile, an
/// environment), they are where nothing is fetched from, unless a package's URL is in them.
fn warn_unnamed(
    ctx: &Context,
    input: &Input,
    channels: &[crate::conda::channel::ChannelSource],
    records: &[RepoDataRecord],
) {
    let solved = matches!(input.packages, Packages::Specs(_));
    let unnamed: Vec<_> = channels
        .iter()
        .filter(|c| c.is_unnamed_local())
        .map(|c| &c.canonical)
        .filter(|dir| {
            solved
                || !records
                    .iter()
                    .any(|r| r.url.as_str().starts_with(dir.as_str()))
        })
        .collect();
    if unnamed.is_empty() {
        return;
    }
    ctx.warn_once(&if solved {
        crate::conda::channel::unnamed_local_warning(&unnamed)
    } else {
        crate::conda::channel::unused_local_warning(&unnamed)
    });
}

/// The virtual packages the solve assumes for an image on `base`.
fn virtual_packages(
    b: &Builder,
    ctx: &Context,
    subdir: Subdir,
    base: &Image,
) -> Result<Vec<GenericVirtualPackage>, Error> {
    let mut overrides = b.virtual_packages.clone();
    overrides.remove("__glibc");
    let glibc = glibc(b, ctx, base)?;
    solve::virtual_packages(subdir, &glibc, &overrides).map_err(Error::Conda)
}

/// The glibc the image has: `__glibc` as overridden, else the base's, else
/// [`DEFAULT_GLIBC`]. The solve and PyPI's manylinux tags both take it.
pub(crate) fn glibc(b: &Builder, ctx: &Context, base: &Image) -> Result<String, Error> {
    Ok(match b.virtual_packages.get("__glibc") {
        Some(v) => v.clone(),
        None => crate::image::files::glibc_version(base, ctx.cancel())?
            .unwrap_or_else(|| DEFAULT_GLIBC.to_string()),
    })
}
