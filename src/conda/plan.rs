//! Planning layers: which files of an installed prefix go in which layer.
//!
//! `layered` gives each package its own layer in dependency order (with its `conda-meta` record,
//! so scanners still see it), merging the rest into one layer when the budget runs out;
//! `single` puts everything in one layer. Files no package owns go in a final layer.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use super::{Error, Result};

/// How the environment is split into layers (the seed's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LayeringStrategy {
    /// One layer per package, in dependency order, within the layer budget.
    #[default]
    Layered,
    /// The whole environment in one layer.
    Single,
}

/// The most layers an image should have, base layers included (Docker's limit is near 125).
pub const MAX_LAYERS: usize = 100;

/// One planned layer: the files it holds, relative to the prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerGroup {
    /// What the layer holds, for history and messages (`bzip2-1.0.8-h4bc722e_7`).
    pub description: String,
    /// The packages (`name-version-build`) in it.
    pub packages: Vec<String>,
    /// Files, symlinks and empty directories, relative to the prefix.
    pub paths: Vec<PathBuf>,
    /// The newest build timestamp of its packages, in seconds since the epoch.
    pub timestamp: Option<u64>,
}

/// The layers planned for an environment, bottom first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerPlan {
    /// The groups, bottom first.
    pub groups: Vec<LayerGroup>,
}

fn dist_name(r: &RepoDataRecord) -> String {
    let p = &r.package_record;
    format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build)
}

fn timestamp(r: &RepoDataRecord) -> Option<u64> {
    r.package_record
        .timestamp
        .as_ref()
        .map(|t| t.timestamp().max(0) as u64)
}

/// Every file, symlink and empty directory below `root`, relative to it.
fn walk(root: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut empty = true;
        for entry in std::fs::read_dir(&dir).map_err(Error::io("reading", &dir))? {
            empty = false;
            let entry = entry.map_err(Error::io("reading", &dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(Error::io("reading", &path))?;
            if kind.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        if empty && dir != root {
            out.insert(dir.strip_prefix(root).unwrap_or(&dir).to_path_buf());
        }
    }
    Ok(out)
}

/// Plans the layers for the prefix at `prefix`, installed from `records` (in dependency order).
///
/// `budget` is how many layers the environment may add (the image limit less the base's layers).
pub fn plan_layers(
    prefix: &Path,
    records: &[RepoDataRecord],
    strategy: LayeringStrategy,
    budget: usize,
) -> Result<LayerPlan> {
    let meta = prefix.join("conda-meta");
    let mut installed: HashMap<String, PrefixRecord> = HashMap::new();
    for r in records {
        let name = format!("{}.json", dist_name(r));
        let path = meta.join(&name);
        let record = PrefixRecord::from_path(&path).map_err(Error::io("reading", &path))?;
        installed.insert(name, record);
    }
    let mut unowned = walk(prefix)?;
    let mut groups = Vec::new();
    for r in records {
        let file = format!("{}.json", dist_name(r));
        let record = &installed[&file];
        let mut paths: Vec<PathBuf> = record
            .paths_data
            .paths
            .iter()
            .map(|p| p.relative_path.clone())
            .collect();
        paths.push(Path::new("conda-meta").join(&file));
        paths.retain(|p| unowned.remove(p));
        groups.push(LayerGroup {
            description: dist_name(r),
            packages: vec![dist_name(r)],
            paths,
            timestamp: timestamp(r),
        });
    }
    let package_layers = budget.saturating_sub(1).max(1);
    let groups = match strategy {
        LayeringStrategy::Single => {
            merge(groups, unowned.into_iter().collect(), "conda environment")
        }
        LayeringStrategy::Layered => {
            let mut groups = if groups.len() > package_layers {
                let rest = groups.split_off(package_layers.saturating_sub(1));
                let n = rest.len();
                groups.extend(merge(rest, Vec::new(), &format!("{n} more packages")));
                groups
            } else {
                groups
            };
            if !unowned.is_empty() {
                groups.push(LayerGroup {
                    description: "environment files owned by no package".into(),
                    packages: Vec::new(),
                    paths: unowned.into_iter().collect(),
                    timestamp: None,
                });
            }
            groups
        }
    };
    Ok(LayerPlan { groups })
}

fn merge(groups: Vec<LayerGroup>, extra: Vec<PathBuf>, description: &str) -> Vec<LayerGroup> {
    let timestamp = groups.iter().filter_map(|g| g.timestamp).max();
    let mut merged = LayerGroup {
        description: description.to_string(),
        packages: Vec::new(),
        paths: extra,
        timestamp,
    };
    for g in groups {
        merged.packages.extend(g.packages);
        merged.paths.extend(g.paths);
    }
    vec![merged]
}
