//! The dry run: the layer plan made from the records alone, without downloading or composing
//! anything: which layers, with which packages, and which packages and wheels are missing.

use rattler_conda_types::{RepoDataRecord, Subdir};

use crate::conda::contents::{ContentsCache, PackageContents};
use crate::conda::plan::{self, LayerPlan, plan_layers};
use crate::input::Input;
use crate::reporter::Stage;

use super::prepare::{self, Prepared};
use super::{Builder, Context, Error, pypi, wheels};

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
    /// Packages neither the package cache nor the contents cache has; when `layers` is
    /// known, only those of the layers to build.
    pub downloads: Vec<Download>,
    /// Where each planned layer would come from: this machine's layer cache, a remote cache
    /// (`--cache-from`), or built. Known when every package's contents are (read before, or
    /// described by a remote cache) and there is no `pip:` section; else `null`.
    pub layers: Option<Vec<PlannedSource>>,
    /// The PyPI wheels the build would install (before those conda turns out to provide).
    pub pypi: Vec<PlannedWheel>,
}

/// Where a planned layer would come from.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlannedSource {
    /// What the layer holds.
    pub layer: String,
    /// Its layer key.
    pub key: Option<crate::image::Digest>,
    /// `cache`, `remote` (with the `cache` reference) or `built`.
    #[serde(flatten)]
    pub from: super::LayerFrom,
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

impl Builder {
    /// The layer plan of the build for this builder's platform, made from the records alone,
    /// without downloading or composing anything.
    pub async fn dry_run(&self, ctx: &Context, input: &Input) -> Result<DryRun, Error> {
        self.dry_run_for(ctx, input, self.subdir).await
    }

    /// [`Self::dry_run`] for `subdir`.
    pub(crate) async fn dry_run_for(
        &self,
        ctx: &Context,
        input: &Input,
        subdir: Subdir,
    ) -> Result<DryRun, Error> {
        let prepared = prepare::prepare(self, ctx, input, subdir).await?;
        let budget = prepared.layer_budget();
        let contents_cache = self.contents_cache();
        let caches = super::remote::read(self, ctx, &crate::platform::oci_platform(subdir)).await?;
        let known: Vec<Option<PackageContents>> = prepared
            .records
            .iter()
            .map(|r| {
                let key = ContentsCache::key(r)?;
                contents_cache
                    .get(&key)
                    .or_else(|| caches.contents(&key).map(|c| c.as_ref().clone()))
            })
            .collect();
        // A package read before is planned by its files' bytes, as the build plans it; one
        // never read, by its archive size (the lockfile's or repodata's), an estimate.
        let sizes: Vec<u64> = prepared
            .records
            .iter()
            .zip(&known)
            .map(|(r, c)| match c {
                Some(c) => c.file_bytes(),
                None => r.package_record.size.unwrap_or(0),
            })
            .collect();
        let plan = plan_layers(&prepared.records, &sizes, prepared.strategy, budget);
        let exact = input.pypi.is_none() && known.iter().all(Option::is_some);
        let (layers, to_build) = match exact {
            true => {
                let (layers, to_build) = self.sources(ctx, input, &prepared, &caches).await?;
                (Some(layers), Some(to_build))
            }
            false => (None, None),
        };
        Ok(DryRun {
            platform: subdir.to_string(),
            base_layers: prepared.base.layers().len(),
            budget,
            plan,
            downloads: downloads(
                &prepared.fetcher(self, ctx),
                &prepared,
                &known,
                to_build.as_deref(),
            )
            .await?,
            layers,
            pypi: self.planned_wheels(ctx, input, &prepared, &known).await?,
        })
    }

    /// Where each planned layer would come from, and the records whose layers must be built
    /// (by index), from the exact plan: every package's contents known, none fetched.
    async fn sources(
        &self,
        ctx: &Context,
        input: &Input,
        prepared: &Prepared,
        caches: &super::remote::Caches,
    ) -> Result<(Vec<PlannedSource>, Vec<usize>), Error> {
        let fetcher = prepared.fetcher(self, ctx);
        let env = super::contents::read(self, ctx, prepared, &fetcher, caches).await?;
        let plan = super::plan::plan(self, input, prepared, &env, None);
        let found = super::lookup::lookup(&plan, &self.blobs(ctx), caches);
        let mut to_build = Vec::new();
        let layers = plan
            .layers
            .iter()
            .zip(&found)
            .map(|(layer, found)| {
                if let (None, super::plan::Recipe::Packages(members)) = (found, &layer.recipe) {
                    to_build.extend(members.iter().map(|&i| record_index(prepared, &env, i)));
                }
                PlannedSource {
                    layer: layer.description.clone(),
                    key: layer.key.clone(),
                    from: found
                        .as_ref()
                        .map_or(super::LayerFrom::Built, super::lookup::Found::layer_from),
                }
            })
            .collect();
        Ok((layers, to_build))
    }

    /// The wheels the build would install; what conda provides is known only for the
    /// packages read before.
    async fn planned_wheels(
        &self,
        ctx: &Context,
        input: &Input,
        prepared: &Prepared,
        known: &[Option<PackageContents>],
    ) -> Result<Vec<PlannedWheel>, Error> {
        if input.pypi.is_none() {
            return Ok(Vec::new());
        }
        let (known_records, known_contents): (Vec<RepoDataRecord>, Vec<&PackageContents>) =
            prepared
                .records
                .iter()
                .zip(known)
                .filter_map(|(r, c)| Some((r.clone(), c.as_ref()?)))
                .unzip();
        let provided = crate::pypi::provides::provided(&known_records, &known_contents);
        let (pins, _) = ctx
            .cancellable(wheels::pins(
                self,
                ctx,
                input,
                prepared,
                &prepared.records,
                &provided,
            ))
            .await??;
        ctx.reporter()
            .stage_finished(Stage::Pypi, &format!("{} wheels", pins.len()));
        let root = self.cache_root();
        Ok(pins
            .into_iter()
            .map(|pin| PlannedWheel {
                cached: pin
                    .sha256
                    .as_deref()
                    .is_some_and(|s| crate::pypi::index::cached_wheel(&root, s).is_file()),
                pin,
            })
            .collect())
    }
}

/// The index in `prepared.records` of the environment's package `i` (which is in dependency
/// order).
fn record_index(prepared: &Prepared, env: &super::contents::Environment, i: usize) -> usize {
    let url = &env.fetch_records[i].url;
    prepared
        .records
        .iter()
        .position(|r| &r.url == url)
        .unwrap_or(usize::MAX)
}

/// The packages the build would read that no local cache holds (neither the archive cache nor
/// rattler's package cache): those of `to_build` (record indexes) when the exact plan is
/// known, else every one the contents cache lacks too.
async fn downloads(
    fetcher: &crate::conda::fetch::Fetcher,
    prepared: &Prepared,
    known: &[Option<PackageContents>],
    to_build: Option<&[usize]>,
) -> Result<Vec<Download>, Error> {
    let mut missing = Vec::new();
    for (i, (r, c)) in prepared.records.iter().zip(known).enumerate() {
        let read = match to_build {
            Some(build) => build.contains(&i),
            None => c.is_none(),
        };
        if read && !fetcher.holds(r).await {
            missing.push((i, (r, c)));
        }
    }
    Ok(missing
        .into_iter()
        .map(|(_, (r, _))| Download {
            package: plan::dist_name(r),
            url: prepared.sources.fetch_url(&r.url).to_string(),
            size: r.package_record.size,
        })
        .collect())
}
