//! Stage 3, wheels: the input's PyPI distributions (locked, or its `pip:` section resolved for
//! the environment's python on the base's glibc), fetched into the wheel cache and installed
//! over the conda packages as pip installs them.

use std::collections::{BTreeMap, HashMap};

use rattler_conda_types::RepoDataRecord;

use crate::input::{Input, Pypi};
use crate::pypi::index::{Index, IndexOptions, Locations};
use crate::pypi::provides::Provided;
use crate::reporter::Stage;

use super::contents::Environment;
use super::prepare::{Prepared, glibc};
use super::pypi::{self, InstalledCache, PypiError, Target};
use super::{Builder, Context, Error};

/// The installed wheels, and where they went.
pub(crate) type Wheels = (
    Vec<(pypi::Wheel, crate::pypi::wheel::InstalledWheel)>,
    Target,
);

/// Resolves, fetches and installs the input's wheels over `env` (none without a PyPI part).
pub(crate) async fn install(
    b: &Builder,
    ctx: &Context,
    input: &Input,
    prepared: &Prepared,
    env: &Environment,
) -> Result<Option<Wheels>, Error> {
    if input.pypi.is_none() {
        return Ok(None);
    }
    let python = env.python.as_ref().ok_or(PypiError::NoPython)?;
    let provided = crate::pypi::provides::provided(&env.records, &env.content_refs());
    let (pins, index) = ctx
        .cancellable(pins(b, ctx, input, prepared, &env.records, &provided))
        .await??;
    let fetched = ctx.cancellable(pypi::fetch(&index, &pins)).await??;
    ctx.reporter()
        .stage_finished(Stage::Pypi, &format!("{} wheels", fetched.len()));
    let target = Target::new(python, &prepared.target_prefix);
    let owners: HashMap<String, String> = env
        .placement
        .packages
        .iter()
        .zip(&env.dists)
        .flat_map(|(p, d)| p.files.iter().map(move |f| (f.path.clone(), d.clone())))
        .collect();
    let cache = InstalledCache::new(&b.store().installed_wheels_dir());
    let installed = pypi::install(&fetched, &target, &provided, &owners, &cache)?;
    Ok(Some((installed, target)))
}

/// The input's wheels, not fetched yet: its locked ones, or its `pip:` section resolved
/// for the environment's python on the base's glibc; and the index to fetch them from.
pub(crate) async fn pins(
    b: &Builder,
    ctx: &Context,
    input: &Input,
    prepared: &Prepared,
    records: &[RepoDataRecord],
    provided: &BTreeMap<String, Provided>,
) -> Result<(Vec<pypi::Pin>, Index), Error> {
    let index = |locations: Locations| {
        Index::new(&IndexOptions {
            locations,
            cache_dir: b.cache_root(),
            http: b.pypi_http.clone(),
            reporter: ctx.reporter_arc(),
        })
        .map_err(PypiError::from)
    };
    let reporter = ctx.reporter();
    Ok(match &input.pypi {
        Pypi::Requirements(requirements) => {
            let python = records
                .iter()
                .find(|r| r.package_record.name.as_normalized() == "python")
                .ok_or(PypiError::NoPython)?;
            let target = pypi::resolve_target(
                &python.package_record.version.to_string(),
                &glibc(b, ctx, &prepared.base)?,
                prepared.subdir,
            )?;
            let index = index(b.pypi_locations.over(&requirements.locations))?;
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
        Pypi::Locked(locked) => {
            reporter.stage_started(Stage::Pypi, &format!("{} locked wheels", locked.len()));
            let pins = pypi::locked_pins(locked, b.allow_unhashed_pypi)?;
            // Locked wheels are fetched from where the lock says, never looked up.
            let no_index = Locations {
                no_index: true,
                ..Locations::default()
            };
            (pins, index(no_index)?)
        }
        // Not called for it; no wheel, and an index that is never asked.
        Pypi::None => (Vec::new(), index(Locations::default())?),
    })
}
