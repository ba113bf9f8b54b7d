//! `--cache-to` entries: one OCI artifact per build, under `TAG-<hex>`, holding its cache
//! records and keyed layers; read back by `--cache-from`, listed by `cache remote`, and
//! bounded by deleting the oldest.

use crate::image::manifest::Manifest;
use crate::image::{Digest, Platform, Reference};
use crate::transport::Session;

use super::super::Context;
use super::record::RECORD_TYPE;
use super::{CacheError, LAYER_KEY, keyed_layers, manifests_of, records_in, with_causes};

/// The artifact type of a cache entry `--cache-to` writes.
pub const ENTRY_TYPE: &str = "application/vnd.conda-docker.cache.v1+json";

/// How many hex digits name an entry after its tag.
const ENTRY_HEX: usize = 16;

/// How many entries a cache keeps unless told (`--cache-to REF,max-entries=N`).
pub const DEFAULT_MAX_ENTRIES: usize = 32;

/// The cache entries `--cache-to REF` wrote for `reference` (its tag, then `-` and a hex
/// name).
pub(super) async fn entries(
    reference: &Reference,
    platform: &Platform,
    session: &Session<'_>,
) -> Result<Vec<(Manifest, Reference)>, crate::transport::Error> {
    let mut found = Vec::new();
    for tag in entry_tags(reference, session).await? {
        let entry = reference.with_tag(&tag);
        let (manifest, _) =
            crate::transport::registry::read_manifest(&entry, platform, session).await?;
        if manifest.artifact_type.as_deref() == Some(ENTRY_TYPE) {
            found.push((manifest, entry));
        }
    }
    Ok(found)
}

/// The tags of `reference`'s repository that name its cache entries.
async fn entry_tags(
    reference: &Reference,
    session: &Session<'_>,
) -> Result<Vec<String>, crate::transport::Error> {
    let prefix = format!("{}-", reference.tag_or_latest());
    Ok(
        crate::transport::registry::artifact::tags(reference, session)
            .await?
            .into_iter()
            .filter(|t| {
                t.strip_prefix(&prefix).is_some_and(|h| {
                    h.len() == ENTRY_HEX && h.bytes().all(|b| b.is_ascii_hexdigit())
                })
            })
            .collect(),
    )
}

/// Where `--cache-to` writes: a repository and tag, under which each build's entry is
/// `TAG-<hex>`, and how many entries are kept (the oldest go first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheTo {
    /// The cache's reference.
    pub reference: Reference,
    /// The most entries kept.
    pub max_entries: usize,
}

impl std::str::FromStr for CacheTo {
    type Err = String;

    /// `REF` or `REF,max-entries=N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let reference = parts
            .next()
            .unwrap_or_default()
            .trim_start_matches("docker://")
            .parse::<Reference>()
            .map_err(|e| e.to_string())?;
        let mut max_entries = DEFAULT_MAX_ENTRIES;
        for part in parts {
            match part.split_once('=') {
                Some(("max-entries", n)) => {
                    max_entries =
                        n.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                            format!("max-entries takes a positive number, not `{n}`")
                        })?;
                }
                _ => return Err(format!("unknown option `{part}` (known: max-entries=N)")),
            }
        }
        Ok(CacheTo {
            reference,
            max_entries,
        })
    }
}

/// Writes the layer cache entry of `built` to `to` (see [`CacheTo`]): every keyed layer of
/// every platform's image, mounted from `pushed_to` (a registry output of this build) where
/// that is the same registry, and each platform's cache record; then drops the oldest entries
/// beyond `to.max_entries`. A cache that cannot be written is a warning: the image is done.
pub(crate) async fn export(
    ctx: &Context,
    to: &CacheTo,
    built: &[&crate::builder::BuiltImage],
    pushed_to: Option<&Reference>,
    write: &crate::transport::WriteContext<'_>,
) {
    let written = write_entry(to, built, pushed_to, write).await;
    let pruned = match written {
        Ok(own) => prune(to, &own, &write.session).await,
        Err(e) => Err(e),
    };
    if let Err(source) = pruned {
        if ctx.cancel().is_cancelled() {
            return;
        }
        ctx.reporter().warning(&format!(
            "the layer cache `{}` was not written: {}",
            to.reference,
            with_causes(&source)
        ));
    }
}

/// Pushes the entry; returns its tag.
async fn write_entry(
    to: &CacheTo,
    built: &[&crate::builder::BuiltImage],
    pushed_to: Option<&Reference>,
    write: &crate::transport::WriteContext<'_>,
) -> Result<String, crate::transport::Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut layers = Vec::new();
    for image in built {
        for layer in image.image().layers() {
            let Some(key) = layer.annotations().get(LAYER_KEY) else {
                continue;
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            layers.push(match (layer.origin(), pushed_to) {
                (None, Some(pushed)) => layer.clone().with_origin(pushed.clone()),
                _ => layer.clone(),
            });
        }
    }
    let name = Digest::of(
        seen.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
            .as_bytes(),
    );
    let tag = format!(
        "{}-{}",
        to.reference.tag_or_latest(),
        &name.hex()[..ENTRY_HEX]
    );
    let created = crate::image::config::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let artifact = crate::transport::registry::artifact::LayerArtifact {
        artifact_type: ENTRY_TYPE.to_string(),
        blobs: built
            .iter()
            .map(|b| (RECORD_TYPE.to_string(), b.cache_record.clone()))
            .collect(),
        layers,
        annotations: [("org.opencontainers.image.created".to_string(), created)].into(),
    };
    crate::transport::registry::artifact::push_artifact(artifact, &to.reference, &tag, write)
        .await?;
    Ok(tag)
}

/// Deletes the oldest entries of `to` beyond its `max_entries`, never `own`.
async fn prune(
    to: &CacheTo,
    own: &str,
    session: &Session<'_>,
) -> Result<(), crate::transport::Error> {
    let tags = entry_tags(&to.reference, session).await?;
    if tags.len() <= to.max_entries {
        return Ok(());
    }
    let platform = Platform::linux("amd64", None);
    let mut dated = Vec::new();
    for tag in tags.iter().filter(|t| *t != own) {
        let entry = to.reference.with_tag(tag);
        let (manifest, digest) =
            crate::transport::registry::read_manifest(&entry, &platform, session).await?;
        let created = manifest
            .annotations
            .get("org.opencontainers.image.created")
            .cloned()
            .unwrap_or_default();
        dated.push((created, digest));
    }
    dated.sort();
    let excess = tags.len() - to.max_entries;
    for (_, digest) in dated.into_iter().take(excess) {
        crate::transport::registry::artifact::delete_manifest(&to.reference, &digest, session)
            .await?;
    }
    Ok(())
}

/// One image or entry of a layer cache, as `conda-docker cache remote` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CacheSummary {
    /// The image or entry (`REF`, or `REPO:TAG-<hex>`).
    pub reference: String,
    /// When it was made (its `created` annotation), if it says.
    pub created: Option<String>,
    /// How many keyed layers it holds.
    pub layers: usize,
    /// Their bytes, as stored.
    pub bytes: u64,
    /// How many packages its cache records describe.
    pub packages: usize,
}

/// What the layer cache `reference` holds for `platform`: the image it names, else each of
/// its `--cache-to` entries.
pub async fn summarize(
    reference: &Reference,
    platform: &Platform,
    session: &Session<'_>,
) -> Result<Vec<CacheSummary>, CacheError> {
    let mut summaries = Vec::new();
    for (manifest, found_in) in manifests_of(reference, platform, session).await? {
        let packages = records_in(&manifest, &found_in, session).await?.len();
        let keyed: Vec<_> = keyed_layers(&manifest, &found_in).collect();
        summaries.push(CacheSummary {
            reference: found_in.to_string(),
            created: manifest
                .annotations
                .get("org.opencontainers.image.created")
                .cloned(),
            layers: keyed.len(),
            bytes: keyed.iter().map(|(_, l)| l.written.size).sum(),
            packages,
        });
    }
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_to_takes_a_reference_and_a_bound() {
        let to: CacheTo = "reg.example/cache:main,max-entries=3".parse().unwrap();
        assert_eq!(to.reference.to_string(), "reg.example/cache:main");
        assert_eq!(to.max_entries, 3);
        let plain: CacheTo = "docker://reg.example/cache:main".parse().unwrap();
        assert_eq!(plain.max_entries, DEFAULT_MAX_ENTRIES);
        assert!("reg.example/c:1,max-entries=0".parse::<CacheTo>().is_err());
        assert!("reg.example/c:1,mode=max".parse::<CacheTo>().is_err());
    }
}
