//! The cache record: what each package of an image holds, as its layer keys need it,
//! written beside every image and read back by a fresh runner (see [`super`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use crate::conda::contents::{ContentsCache, PackageContents};
use crate::image::Digest;
use crate::image::manifest::{Descriptor, Manifest};

use super::super::contents::Environment;
use super::{RECORD, RECORD_SIZE};

/// The media type of a cache record (gzip-compressed JSON), as blob and as artifact.
pub const RECORD_TYPE: &str = "application/vnd.conda-docker.cache.record.v1+json+gzip";

/// The record's format, which a reader checks before it trusts any field.
const RECORD_FORMAT: &str = "conda-docker cache record v1";

/// The most bytes a record may hold, compressed and decompressed.
const RECORD_CAP: u64 = 128 << 20;

#[derive(serde::Serialize)]
struct RecordOut<'a> {
    format: &'a str,
    packages: BTreeMap<&'a str, &'a PackageContents>,
}

#[derive(serde::Deserialize)]
struct RecordIn {
    format: String,
    packages: BTreeMap<String, PackageContents>,
}

/// The cache record of `env` (what each of its packages holds, by contents key, as
/// deterministic gzip-compressed JSON: the same environment always gives the same bytes),
/// taken from `cache` when a build kept it
/// there (compressing 10 MB of JSON is a warm build's largest cost otherwise), and kept there.
/// A kept record is used only when it decompresses to exactly the JSON it is kept under.
pub(crate) fn kept_record(env: &Environment, cache: &crate::store::BlobCache) -> Vec<u8> {
    let json = record_json(env);
    let key = Digest::of(&json);
    if let Some(kept) = cache.record(&key)
        && decompress(&kept).is_some_and(|j| j == json)
    {
        return kept;
    }
    let made = gzip(&json);
    // A record not kept is made again next time; the build does not need it kept.
    let _ = cache.put_record(&key, &made);
    made
}

/// `bytes` decompressed, if they are gzip of at most [`RECORD_CAP`] bytes.
fn decompress(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(RECORD_CAP + 1)
        .read_to_end(&mut json)
        .ok()?;
    (json.len() as u64 <= RECORD_CAP).then_some(json)
}

/// The record's JSON.
fn record_json(env: &Environment) -> Vec<u8> {
    let keys: Vec<Option<String>> = env.fetch_records.iter().map(ContentsCache::key).collect();
    let packages = keys
        .iter()
        .zip(&env.contents)
        .filter_map(|(k, c)| Some((k.as_deref()?, c.as_ref())))
        .collect();
    serde_json::to_vec(&RecordOut {
        format: RECORD_FORMAT,
        packages,
    })
    .unwrap_or_default()
}

/// `json` gzip-compressed, deterministically.
fn gzip(json: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    // Writing into memory cannot fail.
    let _ = gz.write_all(json);
    gz.finish().unwrap_or_default()
}

/// Where the manifest's cache records are: named by its annotations (an image), or among its
/// layers (a cache entry, one per platform).
pub(super) fn records_of(manifest: &Manifest) -> Vec<Descriptor> {
    let named = || {
        let digest: Digest = manifest.annotations.get(RECORD)?.parse().ok()?;
        let size: u64 = manifest.annotations.get(RECORD_SIZE)?.parse().ok()?;
        Some(Descriptor {
            media_type: RECORD_TYPE.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        })
    };
    named()
        .into_iter()
        .chain(
            manifest
                .layers
                .iter()
                .filter(|d| d.media_type == RECORD_TYPE)
                .cloned(),
        )
        .filter(|d| d.size <= RECORD_CAP)
        .collect()
}

/// What a record says each package holds, each checked as a package's own files would be.
pub(super) fn parse_record(
    path: &std::path::Path,
) -> Result<HashMap<String, Arc<PackageContents>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // Parsed as it is decompressed, so memory holds the record's values, never its text.
    let mut json = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).take(RECORD_CAP + 1);
    let parsed = serde_json::from_reader::<_, RecordIn>(&mut json);
    if json.limit() == 0 {
        return Err(format!("it holds more than {} MiB", RECORD_CAP >> 20));
    }
    let record = parsed.map_err(|e| format!("not gzip-compressed JSON: {e}"))?;
    if record.format != RECORD_FORMAT {
        return Err(format!("its format is `{}`", record.format));
    }
    record
        .packages
        .into_iter()
        .map(|(key, contents)| {
            contents
                .check(&key)
                .map_err(|e| e.to_string())
                .map(|()| (key, Arc::new(contents)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(json: &str) -> Vec<u8> {
        let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
        gz.write_all(json.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    fn parsed(bytes: &[u8]) -> Result<HashMap<String, Arc<PackageContents>>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("record");
        std::fs::write(&path, bytes).unwrap();
        parse_record(&path)
    }

    fn contents(path: &str) -> String {
        format!(
            r#"{{"name":"x","index":{{"name":"x","version":"1","build":"0","build_number":0,"depends":[]}},
               "noarch_python":false,"entry_points":[],"env_vars":{{}},
               "paths":[{{"path":"{path}","kind":"file","mode":420,"size":1}}]}}"#
        )
    }

    #[test]
    fn a_record_is_read_only_when_it_is_one_and_its_paths_are_safe() {
        let good = format!(
            r#"{{"format":"{RECORD_FORMAT}","packages":{{"sha256-aa":{}}}}}"#,
            contents("bin/x")
        );
        let read = parsed(&gz(&good)).unwrap();
        assert_eq!(read["sha256-aa"].paths[0].path, "bin/x");

        assert!(parsed(b"not gzip").unwrap_err().contains("not gzip"));
        let other = good.replace(RECORD_FORMAT, "something else");
        assert!(parsed(&gz(&other)).unwrap_err().contains("its format is"));
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "conda-meta/x.json",
            "a/.wh.b",
        ] {
            let hostile = format!(
                r#"{{"format":"{RECORD_FORMAT}","packages":{{"sha256-aa":{}}}}}"#,
                contents(bad)
            );
            assert!(parsed(&gz(&hostile)).is_err(), "{bad} was accepted");
        }
    }
}
