//! Planning layers: which packages share a layer, from the records alone (names, sizes,
//! dependency order), so the plan is known before anything is downloaded.
//!
//! - `auto` (the default): the largest packages get layers of their own, the small ones share
//!   a few buckets chosen by a hash of their name ([`super::layering::auto_groups`]), so an update
//!   of one package changes one layer and the big, rarely-changing ones sit low;
//! - `layered`: one layer per package in dependency order, the rest merged into one when the
//!   budget runs out (the seed's behaviour);
//! - `single`: the whole environment in one layer.
//!
//! Files no package owns (`conda-meta/history`, the package list) go in a top layer of their own,
//! which the budget leaves room for.

use rattler_conda_types::RepoDataRecord;
use serde::Serialize;

use super::layering::{PlanPackage, auto_groups, layered_groups};

/// How the environment is split into layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayeringStrategy {
    /// The largest packages alone, the rest in name-hashed buckets, within the layer budget.
    #[default]
    Auto,
    /// One layer per package, in dependency order, within the layer budget.
    Layered,
    /// The whole environment in one layer.
    Single,
}

impl std::str::FromStr for LayeringStrategy {
    type Err = String;

    /// `auto`, `layered` or `single`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "layered" => Ok(Self::Layered),
            "single" => Ok(Self::Single),
            other => Err(format!("`{other}`: use auto, layered or single")),
        }
    }
}

/// The most layers an image should have, base layers included (Docker's limit is near 125).
pub const MAX_LAYERS: usize = 100;

/// One planned layer of packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerGroup {
    /// What the layer holds, for history and messages (`bzip2-1.0.8-h4bc722e_7`).
    pub description: String,
    /// The packages (`name-version-build`) in it, in dependency order.
    pub packages: Vec<String>,
    /// Their indexes in the records the plan was made from.
    #[serde(skip)]
    pub members: Vec<usize>,
    /// The packages' sizes, added up: the bytes of their files when their contents are
    /// known, else their archive sizes as recorded.
    pub bytes: u64,
    /// The newest build timestamp of its packages, in seconds since the epoch.
    pub timestamp: Option<u64>,
}

/// The package layers planned for an environment, bottom first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayerPlan {
    /// The strategy that made it.
    pub strategy: LayeringStrategy,
    /// The groups, bottom first.
    pub groups: Vec<LayerGroup>,
}

/// `name-version-build` of a record.
pub fn dist_name(r: &RepoDataRecord) -> String {
    let p = &r.package_record;
    format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build)
}

fn timestamp(r: &RepoDataRecord) -> Option<u64> {
    r.package_record
        .timestamp
        .as_ref()
        .map(|t| t.timestamp().max(0) as u64)
}

/// Plans the package layers for `records` (in dependency order, with their `sizes`) in at most
/// `budget` layers.
pub fn plan_layers(
    records: &[RepoDataRecord],
    sizes: &[u64],
    strategy: LayeringStrategy,
    budget: usize,
) -> LayerPlan {
    let budget = budget.max(1);
    let groups: Vec<Vec<usize>> = match strategy {
        LayeringStrategy::Single => vec![(0..records.len()).collect()],
        LayeringStrategy::Layered => layered_groups(records.len(), budget),
        LayeringStrategy::Auto => {
            let packages: Vec<PlanPackage> = records
                .iter()
                .zip(sizes)
                .map(|(r, &size)| PlanPackage {
                    name: r.package_record.name.as_normalized().to_string(),
                    size,
                })
                .collect();
            auto_groups(&packages, budget)
        }
    };
    let groups = groups
        .into_iter()
        .filter(|members| !members.is_empty())
        .map(|members| {
            let packages: Vec<String> = members.iter().map(|&i| dist_name(&records[i])).collect();
            let description = match (strategy, packages.as_slice()) {
                (LayeringStrategy::Single, _) => "conda environment".to_string(),
                (_, [one]) => one.clone(),
                (_, many) => format!("{} packages", many.len()),
            };
            LayerGroup {
                description,
                bytes: members.iter().filter_map(|&i| sizes.get(i)).sum(),
                timestamp: members.iter().filter_map(|&i| timestamp(&records[i])).max(),
                packages,
                members,
            }
        })
        .collect();
    LayerPlan { strategy, groups }
}
