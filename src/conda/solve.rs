//! Fetching repodata and solving specs into the exact packages to install.

use std::path::Path;
use std::sync::Arc;

use rattler_conda_types::package::BuildString;
use rattler_conda_types::{
    Channel, GenericVirtualPackage, MatchSpec, PackageName, ParseMatchSpecOptions, ParseStrictness,
    RepoDataRecord, Subdir, Version,
};
use rattler_repodata_gateway::Gateway;
use rattler_solve::{SolveError, SolverImpl, SolverTask};

use super::{Error, Result};

/// Parses conda match specs (`numpy>=1.26`, `conda-forge::zstd`, `python=3.12.*`).
pub fn parse_specs(specs: &[String]) -> Result<Vec<MatchSpec>> {
    specs
        .iter()
        .map(|s| {
            MatchSpec::from_str(s, ParseMatchSpecOptions::from(ParseStrictness::Lenient)).map_err(
                |e| Error::InvalidSpec {
                    spec: s.clone(),
                    reason: e.to_string(),
                },
            )
        })
        .collect()
}

/// The virtual packages an image for `subdir` provides: `__unix`, `__linux`, `__glibc` (at
/// `glibc`), `__archspec`, and any in `extra` (`__cuda` only when given there), which also
/// override the others by name.
pub fn virtual_packages(
    subdir: Subdir,
    glibc: &str,
    extra: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<GenericVirtualPackage>> {
    let parse = |name: &str, version: &str| {
        version.parse::<Version>().map_err(|e| Error::InvalidSpec {
            spec: format!("{name}={version}"),
            reason: e.to_string(),
        })
    };
    let mut packages = default_virtual_packages(subdir, &parse("__glibc", glibc)?);
    for (name, version) in extra {
        if !name.starts_with("__") {
            return Err(Error::InvalidSpec {
                spec: format!("{name}={version}"),
                reason: "virtual package names start with `__` (e.g. `__cuda=12.4`)".into(),
            });
        }
        let version = parse(name, version)?;
        packages.retain(|p| p.name.as_normalized() != name);
        packages.push(GenericVirtualPackage {
            name: PackageName::new_unchecked(name),
            version,
            build_string: BuildString::new_unchecked("0"),
        });
    }
    Ok(packages)
}

fn default_virtual_packages(subdir: Subdir, glibc: &Version) -> Vec<GenericVirtualPackage> {
    let arch = subdir.arch().map(|a| a.to_string()).unwrap_or_default();
    let vp = |name: &str, version: Version, build: &str| GenericVirtualPackage {
        name: PackageName::new_unchecked(name),
        version,
        build_string: BuildString::new_unchecked(build),
    };
    let v = |s: &str| s.parse::<Version>().unwrap_or_else(|_| Version::major(0));
    vec![
        vp("__unix", v("0"), "0"),
        vp("__linux", v("4.18"), "0"),
        vp("__glibc", glibc.clone(), "0"),
        vp("__archspec", v("1"), &arch),
    ]
}

/// A repodata gateway that caches under `cache_dir` and downloads with `client`.
pub fn gateway(cache_dir: &Path, client: reqwest_middleware::ClientWithMiddleware) -> Gateway {
    Gateway::builder()
        .with_cache_dir(cache_dir.join(rattler_cache::REPODATA_CACHE_DIR))
        .with_package_cache(rattler_cache::package_cache::PackageCache::new(
            cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR),
        ))
        .with_client(client)
        .finish()
}

/// An HTTP client with conda's authentication (`~/.rattler` credentials, `.netrc`, env vars).
pub fn http_client() -> reqwest_middleware::ClientWithMiddleware {
    crate::install_tls_provider();
    let client = reqwest::Client::builder()
        .user_agent(concat!("conda-docker/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let mut builder = reqwest_middleware::ClientBuilder::new(client);
    if let Ok(auth) = rattler_networking::AuthenticationMiddleware::from_env_and_defaults() {
        builder = builder.with_arc(Arc::new(auth));
    }
    builder.build()
}

/// Fetches repodata for `specs` from `channels` and solves them for `subdir`.
///
/// The records come back in dependency order (dependencies first).
pub async fn solve(
    gateway: &Gateway,
    channels: &[Channel],
    subdir: Subdir,
    specs: Vec<MatchSpec>,
    virtual_packages: Vec<GenericVirtualPackage>,
) -> Result<Vec<RepoDataRecord>> {
    let names = || {
        channels
            .iter()
            .map(|c| format!("`{}`", c.base_url))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let output = gateway
        .query(
            channels.iter().cloned(),
            [subdir, Subdir::NoArch],
            specs.clone(),
        )
        .recursive(true)
        .execute()
        .await
        .map_err(|source| Error::Repodata {
            channels: names(),
            source,
        })?;
    let repodata = output.repodata;
    check_names_exist(gateway, channels, subdir, &specs, &repodata, names).await?;
    let records = tokio::task::spawn_blocking(move || {
        let task = SolverTask {
            specs,
            virtual_packages,
            ..SolverTask::from_iter(&repodata)
        };
        rattler_solve::resolvo::Solver.solve(task)
    })
    .await
    .map_err(|e| Error::Unsolvable {
        explanation: format!("the solver stopped: {e}"),
    })?
    .map_err(|e| Error::Unsolvable {
        explanation: match e {
            SolveError::Unsolvable(reasons) => reasons.join("\n"),
            other => other.to_string(),
        },
    })?
    .records;
    Ok(sort_by_dependency(records))
}

/// Fails naming the first spec whose package no channel has, with the closest names the
/// channels do have. The repodata queried holds only the records the specs match, so a name
/// with none there is looked up among every name the channels have.
async fn check_names_exist(
    gateway: &Gateway,
    channels: &[Channel],
    subdir: Subdir,
    specs: &[MatchSpec],
    repodata: &[rattler_repodata_gateway::RepoData],
    names: impl Fn() -> String,
) -> Result<()> {
    let unmatched: Vec<&PackageName> = specs
        .iter()
        .filter_map(|s| s.name.as_exact())
        .filter(|n| !n.as_normalized().starts_with("__"))
        .filter(|n| {
            !repodata
                .iter()
                .flat_map(|r| r.iter())
                .any(|r| &r.package_record.name == *n)
        })
        .collect();
    if unmatched.is_empty() {
        return Ok(());
    }
    // Best effort: when the names cannot be read, the solver explains.
    let Ok(known) = gateway
        .names(channels.iter().cloned(), [subdir, Subdir::NoArch])
        .execute()
        .await
        .map(|o| o.names)
    else {
        return Ok(());
    };
    let Some(missing) = unmatched.into_iter().find(|n| !known.contains(n)) else {
        return Ok(());
    };
    Err(Error::NoSuchPackage {
        name: missing.as_source().to_string(),
        channels: names(),
        suggestions: closest(
            missing.as_normalized(),
            known.iter().map(|n| n.as_normalized()),
        ),
    })
}

/// The (at most three) names in `known` closest to `name` by edit distance, closest first;
/// only those a typo away (a third of the name's length, at least one edit).
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1);
    let mut near: Vec<(usize, &str)> = known
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, _)| *d <= limit)
        .collect();
    near.sort();
    near.dedup();
    near.into_iter()
        .take(3)
        .map(|(_, k)| k.to_string())
        .collect()
}

/// The indexes of `records` in dependency order (as [`sort_by_dependency`] orders them).
pub fn dependency_order<'a>(records: impl Iterator<Item = &'a RepoDataRecord>) -> Vec<usize> {
    let records: Vec<&RepoDataRecord> = records.collect();
    let position: std::collections::HashMap<String, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.identifier.to_string(), i))
        .collect();
    sort_by_dependency(records.into_iter().cloned().collect())
        .iter()
        .filter_map(|r| position.get(&r.identifier.to_string()).copied())
        .collect()
}

/// Sorts records so every package comes after its dependencies, ties broken by name.
pub fn sort_by_dependency(mut records: Vec<RepoDataRecord>) -> Vec<RepoDataRecord> {
    records.sort_by(|a, b| a.package_record.name.cmp(&b.package_record.name));
    rattler_conda_types::PackageRecord::sort_topologically(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_closest_names() {
        let known = ["bzip2", "zstd", "libzlib", "bzip3", "python"];
        assert_eq!(closest("bzpi2", known.into_iter()), ["bzip2"]);
        assert_eq!(closest("bzip", known.into_iter()), ["bzip2", "bzip3"]);
        assert_eq!(closest("zstdd", known.into_iter()), ["zstd"]);
        assert!(closest("numpy", known.into_iter()).is_empty());
    }
}
