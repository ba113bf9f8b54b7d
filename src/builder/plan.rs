//! Stage 4, plan: every layer of the image decided, and keyed, before anything is fetched:
//! the package layers (the layering strategy within the layer budget), the wheel layers, the
//! top layer of files no package owns, and each layer's key, which names its bytes.
//!
//! **This is where the layer key is computed** ([`compose::layer_key`] for package layers,
//! [`pypi::layer_key`] for wheel layers, called from [`plan`]).

use std::path::Path;

use crate::conda::plan::{LayerPlan, LayeringStrategy, plan_layers};
use crate::describe::PACKAGE_LIST;
use crate::image::layer_tar::{Entry, EntryData, Ownership};
use crate::image::{Digest, Image};
use crate::input::Input;

use super::compose::{self, LayerSettings};
use super::contents::Environment;
use super::prepare::Prepared;
use super::wheels::Wheels;
use super::{Builder, Sbom, pypi};

/// What a layer is made of.
#[derive(Clone, Debug)]
pub(crate) enum Recipe {
    /// Conda packages, by index into the [`Environment`].
    Packages(Vec<usize>),
    /// Installed wheels, by index into the [`Wheels`].
    Wheels(Vec<usize>),
}

/// One layer of the image, planned: what goes in, its key, and how it is described.
#[derive(Clone, Debug)]
pub(crate) struct PlannedLayer {
    /// What it is made of.
    pub recipe: Recipe,
    /// Its key in the layer cache (none when a member has no hash to key it by).
    pub key: Option<Digest>,
    /// Everything else its bytes depend on.
    pub settings: LayerSettings,
    /// What the layer holds, for history and progress.
    pub description: String,
    /// The history comment (the packages it holds).
    pub comment: Option<String>,
}

/// The image's layers above the base, bottom first, and what the top of the image holds.
pub(crate) struct Plan {
    /// How the packages were grouped (what `--dry-run` prints).
    pub groups: LayerPlan,
    /// Package layers, then wheel layers.
    pub layers: Vec<PlannedLayer>,
    /// The image's creation time.
    pub epoch: u64,
    /// `SOURCE_DATE_EPOCH`, the latest mtime any entry may have (else no clamp).
    pub clamp: u64,
    /// Who owns the prefix, with `--writable-prefix`.
    pub owner: Option<Ownership>,
    /// The package list (conda's explicit format) the image records.
    pub package_list: String,
    /// What the image is built from beyond its packages, which its history records.
    pub recorded: crate::settings::Recorded,
    /// The image's SBOMs, unless built without.
    pub sbom: Option<Sbom>,
    /// The files no package owns, in a layer of their own.
    pub top: Vec<Entry>,
    /// With `single`, the files no package owns go into the one package layer instead.
    pub extra: Vec<Entry>,
    /// What the packages hold, for a fresh runner to key the layers by
    /// ([`super::remote::kept_record`]).
    pub cache_record: Vec<u8>,
}

/// Plans the layers of `env` (and `wheels`) on `prepared`'s base.
pub(crate) fn plan(
    b: &Builder,
    input: &Input,
    prepared: &Prepared,
    env: &Environment,
    wheels: Option<&Wheels>,
) -> Plan {
    let (package_budget, wheel_budget) = budgets(prepared, wheels);
    let sizes: Vec<u64> = env.contents.iter().map(|c| c.file_bytes()).collect();
    let groups = plan_layers(&env.records, &sizes, prepared.strategy, package_budget);
    let epoch = b
        .source_date_epoch
        .or_else(|| groups.groups.iter().filter_map(|g| g.timestamp).max())
        .unwrap_or(0);
    let clamp = b.source_date_epoch.unwrap_or(u64::MAX);
    let owner = owner(prepared);
    let recorded = prepared.recorded(input);
    let package_list = crate::conda::lock::explicit_text(&env.records, prepared.subdir, "");
    let pypi_locked = wheels.map(|(w, _)| pypi::locked(w)).unwrap_or_default();
    let sbom = b.sbom.then(|| {
        let mut sbom = sbom_of(
            input.name.as_deref(),
            env,
            &pypi_locked,
            &prepared.base,
            epoch,
        );
        sbom.provenance = provenance_of(prepared, env, &pypi_locked, &package_list);
        sbom
    });
    let top = top_entries(&prepared.target_prefix, &package_list, sbom.as_ref());
    // `single` puts the files no package owns in its one layer too.
    let (extra, extra_digest) = match prepared.strategy {
        LayeringStrategy::Single => (top.clone(), Some(top_digest(&package_list, sbom.as_ref()))),
        _ => (Vec::new(), None),
    };
    let settings = |mtime: u64| LayerSettings {
        target_prefix: prepared.target_prefix.clone(),
        owner: owner.clone(),
        mtime: mtime.min(clamp),
        trim: prepared.trim,
    };
    let mut layers: Vec<PlannedLayer> = groups
        .groups
        .iter()
        .map(|g| {
            let settings = settings(g.timestamp.unwrap_or(epoch));
            let members = compose::members(env, &g.members);
            PlannedLayer {
                key: compose::layer_key(&members, extra_digest.as_ref(), &settings),
                recipe: Recipe::Packages(g.members.clone()),
                settings,
                description: g.description.clone(),
                comment: (!g.packages.is_empty()).then(|| g.packages.join(" ")),
            }
        })
        .collect();
    if let Some(wheels) = wheels {
        layers.extend(wheel_layers(wheels, wheel_budget, settings(epoch)));
    }
    Plan {
        groups,
        layers,
        epoch,
        clamp,
        owner,
        package_list,
        recorded,
        sbom,
        top,
        extra,
        // Made (or taken from the store) by the build, never by a dry run, which stores nothing.
        cache_record: Vec::new(),
    }
}

/// The layer budget of the packages and of the wheels: the image's limit less the base's
/// layers, the user's and the top layer; the wheels take a fifth of it at most.
fn budgets(prepared: &Prepared, wheels: Option<&Wheels>) -> (usize, usize) {
    let budget = prepared.layer_budget();
    let wheel_budget = match wheels {
        Some((w, _)) if !w.is_empty() => match prepared.strategy {
            LayeringStrategy::Single => 1,
            _ => w.len().min((budget / 5).max(1)),
        },
        _ => 0,
    };
    (budget.saturating_sub(wheel_budget).max(1), wheel_budget)
}

/// The wheels' layers, each keyed by the wheels' hashes, prefix and scheme.
fn wheel_layers(
    (installed, target): &Wheels,
    budget: usize,
    settings: LayerSettings,
) -> Vec<PlannedLayer> {
    pypi::groups(installed, budget)
        .into_iter()
        .map(|group| {
            let members: Vec<_> = group.iter().map(|&i| &installed[i]).collect();
            let names: Vec<String> = members.iter().map(|(_, i)| pypi::dist(i)).collect();
            PlannedLayer {
                key: Some(pypi::layer_key(&members, target, &settings)),
                recipe: Recipe::Wheels(group),
                settings: settings.clone(),
                description: format!("PyPI: {}", names.join(" ")),
                comment: Some(names.join(" ")),
            }
        })
        .collect()
}

/// Who owns the prefix: the user, with `--writable-prefix`.
fn owner(prepared: &Prepared) -> Option<Ownership> {
    let prefix = &prepared.target_prefix;
    match (&prepared.user, prepared.settings.writable_prefix) {
        (Some(u), true) => Some(Ownership {
            root: prefix.strip_prefix("/").unwrap_or(prefix).to_path_buf(),
            uid: u.uid,
            gid: u.gid,
        }),
        _ => None,
    }
}

/// The digest of the files no package owns, for the key of `single`'s one layer.
fn top_digest(package_list: &str, sbom: Option<&Sbom>) -> Digest {
    let mut all = package_list.as_bytes().to_vec();
    if let Some(s) = sbom {
        all.extend_from_slice(&s.spdx);
        all.extend_from_slice(&s.cyclonedx);
        all.extend_from_slice(&s.provenance);
    }
    Digest::of(&all)
}

/// The SBOMs of the environment `env` on `base`, created at `created`.
fn sbom_of(
    name: Option<&str>,
    env: &Environment,
    pypi: &[crate::conda::lock::LockedPypi],
    base: &Image,
    created: u64,
) -> Sbom {
    let base = base_image(base);
    let provides: Vec<_> = env
        .records
        .iter()
        .zip(&env.contents)
        .map(|(r, c)| crate::pypi::provides::installed(r, c))
        .collect();
    let subject = crate::describe::sbom::Subject {
        name: name.unwrap_or("conda environment"),
        records: &env.records,
        pypi,
        provides: &provides,
        base: base.as_ref(),
        created,
    };
    Sbom {
        spdx: crate::describe::sbom::spdx(&subject),
        cyclonedx: crate::describe::sbom::cyclonedx(&subject),
        provenance: Vec::new(),
    }
}

/// The base by its content alone (none for `scratch`): where it was read from (a registry, a
/// mirror of it, an archive's path) is not part of the image.
fn base_image(base: &Image) -> Option<crate::describe::sbom::BaseImage> {
    (!base.layers().is_empty()).then(|| crate::describe::sbom::BaseImage {
        image_id: Digest::of(&base.config_bytes(base.config().rootfs.diff_ids.clone())),
    })
}

/// The provenance statement of the environment `env` on `prepared`'s base.
fn provenance_of(
    prepared: &Prepared,
    env: &Environment,
    pypi: &[crate::conda::lock::LockedPypi],
    package_list: &str,
) -> Vec<u8> {
    let base = base_image(&prepared.base);
    let prefix = prepared.target_prefix.to_string_lossy();
    crate::describe::provenance::statement(&crate::describe::provenance::Build {
        prefix: &prefix,
        package_list,
        platform: prepared.subdir.as_str(),
        records: &env.records,
        pypi,
        base: base.as_ref(),
    })
}

/// The files no package owns: `conda-meta/history`, the package list, the SBOMs and the
/// provenance statement.
fn top_entries(prefix: &Path, package_list: &str, sbom: Option<&Sbom>) -> Vec<Entry> {
    let in_image = prefix.strip_prefix("/").unwrap_or(prefix);
    let file = |path: &str, bytes: Vec<u8>| Entry {
        path: in_image.join(path),
        data: EntryData::Bytes(bytes),
        mode: 0o644,
    };
    let mut entries = vec![
        file("conda-meta/history", Vec::new()),
        file(PACKAGE_LIST, package_list.as_bytes().to_vec()),
    ];
    if let Some(s) = sbom {
        entries.push(file(crate::describe::sbom::SPDX_FILE, s.spdx.clone()));
        entries.push(file(
            crate::describe::sbom::CYCLONEDX_FILE,
            s.cyclonedx.clone(),
        ));
        entries.push(file(
            crate::describe::provenance::FILE,
            s.provenance.clone(),
        ));
    }
    entries
}
