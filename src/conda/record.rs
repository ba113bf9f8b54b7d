//! The records an image holds, made the same way whichever way a package was found.
//!
//! A solve gives repodata records (with the channel's patches and whatever URL the package was
//! read from); a lockfile gives as much as its format carries; an existing environment gives
//! its `conda-meta`. The image must not depend on which: [`image_record`] makes every record
//! from the package's own `info/index.json` (name, version, build, dependencies, license,
//! timestamp, ...: what the archive, fixed by its sha256, says of itself), its sha256 (its md5
//! only when no sha256 is known) and its canonical URL. Archive size and md5 are left out: not
//! every lockfile format carries them, and they add nothing the sha256 does not fix.

use rattler_conda_types::{PackageRecord, RepoDataRecord};
use url::Url;

use super::channel::Sources;
use super::contents::PackageContents;
use super::{Error, Result};

/// The channel part of a canonical package URL (`https://host/channel`, no subdir or file).
pub fn channel_of(url: &Url) -> String {
    let mut channel = url.clone();
    channel.set_fragment(None);
    channel.set_query(None);
    if let Ok(mut segments) = channel.path_segments_mut() {
        segments.pop().pop();
    }
    channel.as_str().trim_end_matches('/').to_string()
}

/// The record an image holds for the package `source` names, whose contents are `contents`.
pub fn image_record(
    source: &RepoDataRecord,
    contents: &PackageContents,
    sources: &Sources,
) -> Result<RepoDataRecord> {
    let dist = source.identifier.to_string();
    let given = &source.package_record;
    let sha256 = given.sha256;
    let md5 = if sha256.is_none() { given.md5 } else { None };
    let mut record = PackageRecord::from_index_json(contents.index.clone(), None, sha256, md5)
        .map_err(|e| Error::UnsafePackage {
            package: dist.clone(),
            path: "info/index.json".into(),
            reason: e.to_string(),
        })?;
    // What repodata adds beyond the package is not the package's: leave it out.
    record.run_exports = None;
    record.legacy_bz2_md5 = None;
    record.legacy_bz2_size = None;
    let url = sources.canonical_url(&source.url);
    Ok(RepoDataRecord {
        package_record: record,
        identifier: source.identifier.clone(),
        channel: Some(channel_of(&url)),
        url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_of_a_package_url() {
        let url =
            Url::parse("https://conda.anaconda.org/conda-forge/linux-64/a-1-0.conda").unwrap();
        assert_eq!(channel_of(&url), "https://conda.anaconda.org/conda-forge");
    }
}
