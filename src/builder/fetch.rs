//! Stage 6, fetch: the packages of the layers no cache has (several at once, sha256-checked);
//! the packages of layers found in a cache are never fetched.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use crate::conda::fetch::{Fetcher, PackageSource};
use crate::conda::package_files::PackageFiles;
use crate::reporter::Stage;

use super::contents::Environment;
use super::lookup::Found;
use super::plan::{Plan, Recipe};
use super::{CONCURRENT_PACKAGES, Context, Error};

/// The packages fetched for the layers to make: where each is read from, by dist, and where
/// the spools of archives being read go.
pub(crate) struct FetchedPackages {
    /// Where each package is, by dist.
    pub sources: HashMap<String, PackageSource>,
    /// The files of those whose read kept them, by dist.
    pub files: HashMap<String, PackageFiles>,
    /// Where spools go.
    pub tmp: std::path::PathBuf,
}

/// Fetches the packages the missing package layers need (packages just fetched to be read
/// are not looked up again).
pub(crate) async fn fetch_missing(
    ctx: &Context,
    plan: &Plan,
    stored: &[Option<Found>],
    env: &mut Environment,
    fetcher: &Fetcher,
) -> Result<FetchedPackages, Error> {
    let missing: Vec<&Vec<usize>> = plan
        .layers
        .iter()
        .zip(stored)
        .filter_map(|(l, s)| match (&l.recipe, s) {
            (Recipe::Packages(members), None) => Some(members),
            _ => None,
        })
        .collect();
    let mut dirs: HashMap<String, PackageSource> = HashMap::new();
    let mut files: HashMap<String, PackageFiles> = HashMap::new();
    let mut wanted = Vec::new();
    for &i in missing.iter().flat_map(|m| m.iter()) {
        match env.known_sources[i].take() {
            Some(fetched) => {
                if let Some(kept) = fetched.files {
                    files.insert(env.dists[i].clone(), kept);
                }
                dirs.insert(env.dists[i].clone(), fetched.source);
            }
            None => wanted.push(i),
        }
    }
    let fetched: Vec<PackageSource> =
        futures::stream::iter(wanted.iter().map(|&i| fetcher.fetch(&env.fetch_records[i])))
            .buffered(CONCURRENT_PACKAGES)
            .try_collect()
            .await?;
    for (&i, dir) in wanted.iter().zip(fetched) {
        dirs.insert(env.dists[i].clone(), dir);
    }
    ctx.reporter().stage_finished(
        Stage::Install,
        &format!(
            "{} packages, {} of {} layers to make, {} trimmed",
            env.records.len(),
            missing.len(),
            plan.groups.groups.len(),
            human_bytes(env.placement.trimmed_bytes)
        ),
    );
    Ok(FetchedPackages {
        sources: dirs,
        files,
        tmp: fetcher.tmp_dir().to_path_buf(),
    })
}

/// `1.2 MB`.
fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{} kB", bytes.div_ceil(1000))
    }
}
