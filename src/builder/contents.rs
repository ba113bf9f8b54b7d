//! Stage 2, contents: what each package holds (from the contents cache, else fetched and
//! read through the checked reader), the image's records made from it in dependency order,
//! and where every file goes (clobbers, trims, noarch python).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use rattler::install::PythonInfo;
use rattler_conda_types::RepoDataRecord;

use crate::conda::contents::{ContentsCache, PackageContents};
use crate::conda::fetch::{Fetched, Fetcher};
use crate::conda::place::{self, Placement};
use crate::conda::{record, solve};
use crate::reporter::Stage;

use super::prepare::Prepared;
use super::remote::Caches;
use super::{Builder, CONCURRENT_PACKAGES, Context, Error, compose};

/// The environment's packages, dependencies first, with what each holds and where it goes.
pub(crate) struct Environment {
    /// The image's records, made from the packages themselves.
    pub records: Vec<RepoDataRecord>,
    /// The records as resolved, to fetch by.
    pub fetch_records: Vec<RepoDataRecord>,
    /// What each package holds.
    pub contents: Vec<Arc<PackageContents>>,
    /// Where each package fetched just now is (and its files, if its read kept them), so it
    /// needs no second look.
    pub known_sources: Vec<Option<Fetched>>,
    /// Whether what each package holds was taken from a remote cache, not yet checked
    /// against the package itself ([`confirm`] does, before a layer is made from it).
    pub described: Vec<bool>,
    /// `name-version-build` of each package.
    pub dists: Vec<String>,
    /// The environment's python, if it has one.
    pub python: Option<PythonInfo>,
    /// Where every file goes.
    pub placement: Placement,
}

impl Environment {
    /// What each package holds, by reference.
    pub fn content_refs(&self) -> Vec<&PackageContents> {
        self.contents.iter().map(|c| c.as_ref()).collect()
    }
}

/// Reads what each of `prepared`'s packages holds and places their files.
pub(crate) async fn read(
    b: &Builder,
    ctx: &Context,
    prepared: &Prepared,
    fetcher: &Fetcher,
    caches: &Caches,
) -> Result<Environment, Error> {
    let reporter = ctx.reporter();
    let records = &prepared.records;
    reporter.stage_started(Stage::Install, &format!("{} packages", records.len()));
    reporter.install_started(records.len());
    let contents_cache = b.contents_cache();
    contents_cache.remove_stale();
    let read: Vec<Read> = futures::stream::iter(
        records
            .iter()
            .map(|r| contents_of(r, fetcher, &contents_cache, caches)),
    )
    .buffered(CONCURRENT_PACKAGES)
    .try_collect()
    .await?;
    ctx.check_cancel()?;
    reporter.stage_finished(Stage::Install, &format!("{} packages", read.len()));
    let mut env = in_dependency_order(records, read, prepared)?;
    env.python = place::python_info(&env.records, prepared.subdir)?;
    let content_refs: Vec<&PackageContents> = env.contents.iter().map(|c| c.as_ref()).collect();
    let placement = place::place(
        &env.records,
        &content_refs,
        env.python.as_ref(),
        &prepared.target_prefix,
        prepared.trim,
    )?;
    for c in &placement.clobbers {
        reporter.warning(&format!(
            "`{}` and `{}` both ship `{}`; the image gets `{}`'s (the later in dependency order)",
            c.loser, c.winner, c.path, c.winner
        ));
    }
    let members: Vec<(&str, &PackageContents)> = env
        .dists
        .iter()
        .map(String::as_str)
        .zip(content_refs.iter().copied())
        .collect();
    compose::check_placeholders(&members, &prepared.target_prefix)?;
    env.placement = placement;
    Ok(env)
}

/// What one package holds, where it was fetched to (if it was just now), and whether a remote
/// cache said it.
type Read = (Arc<PackageContents>, Option<Fetched>, bool);

/// What `record`'s package holds: from the contents cache, else from a remote cache (to be
/// confirmed before a layer is made from it), else fetched and read.
async fn contents_of(
    record: &RepoDataRecord,
    fetcher: &Fetcher,
    cache: &ContentsCache,
    caches: &Caches,
) -> Result<Read, crate::conda::Error> {
    let key = ContentsCache::key(record);
    if let Some(key) = &key
        && cache.get(key).is_none()
        && let Some(said) = caches.contents(key)
    {
        return Ok((said, None, true));
    }
    let (contents, dir) = fetcher.contents(record, cache).await?;
    Ok((contents, dir, false))
}

/// Checks what the remote caches said of each package fetched now (in `sources`, by dist)
/// against the package itself, keeping it in the contents cache when it agrees; returns the
/// contents keys of those that disagree.
pub(crate) fn confirm(
    b: &Builder,
    env: &Environment,
    sources: &std::collections::HashMap<String, crate::conda::fetch::PackageSource>,
) -> Result<Vec<String>, Error> {
    let cache = b.contents_cache();
    let mut differ = Vec::new();
    for i in (0..env.dists.len()).filter(|&i| env.described[i]) {
        let (Some(source), Some(key)) = (
            sources.get(&env.dists[i]),
            ContentsCache::key(&env.fetch_records[i]),
        ) else {
            continue;
        };
        let tmp = b.store().tmp_dir();
        let real = crate::conda::fetch::read_contents(source, &env.fetch_records[i], &tmp)?;
        if real == *env.contents[i] {
            cache.put(&key, &real)?;
        } else {
            differ.push(key);
        }
    }
    Ok(differ)
}

/// The image's records, from the packages themselves, in their dependency order; the records
/// as resolved stay beside them, to fetch by.
fn in_dependency_order(
    resolved: &[RepoDataRecord],
    read: Vec<Read>,
    prepared: &Prepared,
) -> Result<Environment, Error> {
    let mut rows = Vec::with_capacity(resolved.len());
    for (source, (contents, dir, described)) in resolved.iter().zip(read) {
        let image_record = record::image_record(source, &contents, &prepared.sources)?;
        rows.push(Some((
            image_record,
            source.clone(),
            contents,
            dir,
            described,
        )));
    }
    let order = solve::dependency_order(rows.iter().flatten().map(|r| &r.0));
    let mut env = Environment {
        records: Vec::with_capacity(rows.len()),
        fetch_records: Vec::with_capacity(rows.len()),
        contents: Vec::with_capacity(rows.len()),
        known_sources: Vec::with_capacity(rows.len()),
        described: Vec::with_capacity(rows.len()),
        dists: Vec::with_capacity(rows.len()),
        python: None,
        placement: Placement::default(),
    };
    for (image_record, source, contents, dir, described) in
        order.iter().filter_map(|&i| rows[i].take())
    {
        env.described.push(described);
        env.dists.push(image_record.identifier.to_string());
        env.records.push(image_record);
        env.fetch_records.push(source);
        env.contents.push(contents);
        env.known_sources.push(dir);
    }
    Ok(env)
}
