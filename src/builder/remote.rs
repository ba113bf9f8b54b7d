//! Remote layer caches: the images and cache artifacts `--cache-from` names, read before
//! anything is fetched, so that a runner with an empty disk takes every layer it can from a
//! registry by its key and fetches only the packages of the others.
//!
//! Every image conda-docker writes is such a cache, with nothing to export: each keyed layer's
//! descriptor carries its key and diff_id ([`LAYER_KEY`], [`LAYER_DIFF_ID`]), and the manifest
//! names the image's *cache record* ([`RECORD`]): what each package holds (its checked
//! `paths.json`, `index.json` and entry points, as the contents cache keeps them), which is
//! all that computing the keys needs. The record travels beside the image as a referrer, so
//! the registry keeps it. Reading a cache costs one manifest GET and one blob GET.
//!
//! A layer found in a cache is trusted to hold what its key says, as the image's own repository
//! is trusted (docs/caches.md, "Trust"). What a package holds is checked for safe paths when
//! read here, and against the package itself before any layer is made from it.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use futures::StreamExt;

use crate::conda::contents::{ContentsCache, PackageContents};
use crate::image::manifest::{Descriptor, Manifest};
use crate::image::{Compression, Digest, Platform, Reference, WrittenLayer};
use crate::store::KeyedLayer;
use crate::transport::{Remote, Session};

use super::contents::Environment;
use super::lookup::Found;
use super::{Builder, Context, Error};

/// The annotation of a keyed layer's descriptor: its layer key.
pub const LAYER_KEY: &str = "org.conda-docker.layer.key";
/// The annotation of a keyed layer's descriptor: its diff_id (so no config need be read).
pub const LAYER_DIFF_ID: &str = "org.conda-docker.layer.diff_id";
/// The manifest annotation naming the image's cache record blob, by digest.
pub const RECORD: &str = "org.conda-docker.cache.record";
/// The manifest annotation giving the cache record blob's size.
pub const RECORD_SIZE: &str = "org.conda-docker.cache.record.size";
/// The media type of a cache record (gzip-compressed JSON), as blob and as artifact.
pub const RECORD_TYPE: &str = "application/vnd.conda-docker.cache.record.v1+json+gzip";

/// The artifact type of a cache entry `--cache-to` writes.
pub const ENTRY_TYPE: &str = "application/vnd.conda-docker.cache.v1+json";
/// How many hex digits name an entry after its tag.
const ENTRY_HEX: usize = 16;
/// How many entries a cache keeps unless told (`--cache-to REF,max-entries=N`).
pub const DEFAULT_MAX_ENTRIES: usize = 32;

/// The record's format, which a reader checks before it trusts any field.
const RECORD_FORMAT: &str = "conda-docker cache record v1";
/// The most bytes a record may hold, compressed and decompressed.
const RECORD_CAP: u64 = 128 << 20;

/// How many remote layers are pulled at once.
const CONCURRENT_PULLS: usize = 4;

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

/// The cache record of `env`: what each of its packages holds, by contents key, as
/// deterministic gzip-compressed JSON (the same environment always gives the same bytes).
pub(crate) fn record(env: &Environment) -> Vec<u8> {
    let keys: Vec<Option<String>> = env.fetch_records.iter().map(ContentsCache::key).collect();
    let packages = keys
        .iter()
        .zip(&env.contents)
        .filter_map(|(k, c)| Some((k.as_deref()?, c.as_ref())))
        .collect();
    let json = serde_json::to_vec(&RecordOut {
        format: RECORD_FORMAT,
        packages,
    })
    .unwrap_or_default();
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::new(6));
    // Writing into memory cannot fail.
    let _ = gz.write_all(&json);
    gz.finish().unwrap_or_default()
}

/// A layer a remote cache holds: what it is, and the repository it was found in.
#[derive(Clone, Debug)]
pub(crate) struct RemoteLayer {
    /// Its blob and diff_id.
    pub written: WrittenLayer,
    /// Where it was found (the `--cache-from` reference).
    pub origin: Reference,
}

/// What the remote caches hold: layers by key, and what packages hold by contents key.
#[derive(Default)]
pub(crate) struct Caches {
    layers: HashMap<Digest, RemoteLayer>,
    contents: HashMap<String, Arc<PackageContents>>,
}

impl Caches {
    /// The layer the caches hold under `key`, if any.
    pub fn layer(&self, key: &Digest) -> Option<&RemoteLayer> {
        self.layers.get(key)
    }

    /// What the caches say the package with contents key `key` holds, if they say.
    pub fn contents(&self, key: &str) -> Option<Arc<PackageContents>> {
        self.contents.get(key).cloned()
    }

    /// Forgets what the caches say of the packages `keys` (found to disagree with them).
    pub fn forget(&mut self, keys: &[String]) {
        for k in keys {
            self.contents.remove(k);
        }
    }
}

/// Why a layer cache could not be used: each is a warning, and the build goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache's manifest or record could not be fetched.
    #[error("the layer cache `{reference}` cannot be read, so its layers are made here")]
    Read {
        /// The `--cache-from` reference.
        reference: String,
        /// The cause.
        #[source]
        source: crate::transport::Error,
    },
    /// The cache record is not one.
    #[error(
        "the cache record {digest} of `{reference}` is not usable ({reason}), so its layers are made here"
    )]
    Record {
        /// The `--cache-from` reference.
        reference: String,
        /// The record's digest.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer found in a cache could not be pulled or did not match its diff_id.
    #[error("the layer {digest} from `{reference}` cannot be taken, so it is made here")]
    Layer {
        /// The `--cache-from` reference.
        reference: String,
        /// The layer's blob digest.
        digest: Digest,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Tells the reporter of a cache that cannot be used, with its causes.
fn warn(ctx: &Context, error: &CacheError) {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ctx.reporter().warning(&message);
}

/// The registry settings and blob store a cache is read with.
fn remote(b: &Builder, ctx: &Context) -> Remote {
    Remote {
        options: b
            .cache_options
            .clone()
            .unwrap_or_else(|| crate::transport::registry::RegistryOptions::from_env(ctx.env())),
        cache: b.blobs(ctx),
    }
}

/// Reads every cache `b` names for `platform`. One that cannot be read is a warning naming
/// it; only cancellation is an error.
pub(crate) async fn read(b: &Builder, ctx: &Context, platform: &Platform) -> Result<Caches, Error> {
    let mut caches = Caches::default();
    if b.cache_from.is_empty() {
        return Ok(caches);
    }
    let remote = remote(b, ctx);
    let session = Session::new(ctx.cancel())
        .with_remote(&remote)
        .with_reporter(ctx.reporter());
    for reference in &b.cache_from {
        if let Err(e) = read_one(reference, platform, &session, &mut caches).await {
            ctx.check_cancel()?;
            warn(ctx, &e);
        }
    }
    Ok(caches)
}

/// Adds what the cache `reference` holds for `platform` to `caches`.
async fn read_one(
    reference: &Reference,
    platform: &Platform,
    session: &Session<'_>,
    caches: &mut Caches,
) -> Result<(), CacheError> {
    let read = |source| CacheError::Read {
        reference: reference.to_string(),
        source,
    };
    if let Some(remote) = session.remote {
        crate::transport::registry::probe(reference, &remote.options)
            .await
            .map_err(read)?;
    }
    let manifests =
        match crate::transport::registry::read_manifest(reference, platform, session).await {
            Ok((manifest, _)) => vec![(manifest, reference.clone())],
            Err(missing @ crate::transport::Error::NotFound { .. }) => {
                let found = entries(reference, platform, session).await.map_err(read)?;
                if found.is_empty() {
                    return Err(read(missing));
                }
                found
            }
            Err(e) => return Err(read(e)),
        };
    for (manifest, found_in) in &manifests {
        for record in records_of(manifest) {
            let path = crate::transport::registry::download_blob(
                found_in,
                &record.digest,
                record.size,
                session,
            )
            .await
            .map_err(read)?;
            let packages = parse_record(&path).map_err(|reason| CacheError::Record {
                reference: found_in.to_string(),
                digest: record.digest.clone(),
                reason,
            })?;
            caches.contents.extend(packages);
        }
        caches.layers.extend(keyed_layers(manifest, found_in));
    }
    Ok(())
}

/// The cache entries `--cache-to REF` wrote for `reference` (its tag, then `-` and a hex
/// name).
async fn entries(
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

/// The manifest's keyed layers, by key.
fn keyed_layers<'a>(
    manifest: &'a Manifest,
    reference: &'a Reference,
) -> impl Iterator<Item = (Digest, RemoteLayer)> + 'a {
    manifest.layers.iter().filter_map(move |d| {
        let key: Digest = d.annotations.get(LAYER_KEY)?.parse().ok()?;
        let diff_id: Digest = d.annotations.get(LAYER_DIFF_ID)?.parse().ok()?;
        let compression = Compression::from_media_type(&d.media_type)?;
        let written = WrittenLayer {
            diff_id,
            digest: d.digest.clone(),
            size: d.size,
            compression,
        };
        let origin = reference.clone();
        Some((key, RemoteLayer { written, origin }))
    })
}

/// Where the manifest's cache records are: named by its annotations (an image), or among its
/// layers (a cache entry, one per platform).
fn records_of(manifest: &Manifest) -> Vec<Descriptor> {
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
fn parse_record(path: &std::path::Path) -> Result<HashMap<String, Arc<PackageContents>>, String> {
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

/// Pulls each layer found only in a remote cache into the blob cache, as a layer made here
/// would be stored (decompressed, checked against its diff_id, under its key), unless a
/// registry output in `keep_in` can take it from the registry. A layer that cannot be taken
/// is a warning and becomes a miss, to be made from its package.
pub(crate) async fn take(
    b: &Builder,
    ctx: &Context,
    keys: &[Option<Digest>],
    found: &mut [Option<Found>],
    keep_in: Option<&str>,
) -> Result<(), Error> {
    let pulls: Vec<(usize, RemoteLayer)> = found
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Some(Found::Remote(r)) if Some(r.origin.registry()) != keep_in => Some((i, r.clone())),
            _ => None,
        })
        .collect();
    if pulls.is_empty() {
        return Ok(());
    }
    let remote = remote(b, ctx);
    let session = Session::new(ctx.cancel())
        .with_remote(&remote)
        .with_reporter(ctx.reporter());
    let pulled: Vec<(usize, Result<KeyedLayer, CacheError>)> =
        futures::stream::iter(pulls.into_iter().map(|(i, r)| {
            let key = keys[i].clone();
            let session = &session;
            async move { (i, pull(b, ctx, session, &r, key.as_ref()).await) }
        }))
        .buffer_unordered(CONCURRENT_PULLS)
        .collect()
        .await;
    ctx.check_cancel()?;
    for (i, taken) in pulled {
        found[i] = match taken {
            Ok(layer) => Some(Found::Local(layer)),
            Err(e) => {
                warn(ctx, &e);
                None
            }
        };
    }
    Ok(())
}

/// Pulls one remote layer and stores it decompressed under `key`, keeping its compressed blob
/// for compressed outputs.
async fn pull(
    b: &Builder,
    ctx: &Context,
    session: &Session<'_>,
    layer: &RemoteLayer,
    key: Option<&Digest>,
) -> Result<KeyedLayer, CacheError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| CacheError::Layer {
        reference: layer.origin.to_string(),
        digest: layer.written.digest.clone(),
        source,
    };
    let w = &layer.written;
    let path = crate::transport::registry::download_blob(&layer.origin, &w.digest, w.size, session)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let blobs = b.blobs(ctx);
    let (written, key, cancel) = (w.clone(), key.cloned(), ctx.cancel().clone());
    tokio::task::spawn_blocking(move || {
        let stored = store(&blobs, &path, &written, key.as_ref(), &cancel);
        // The compressed copy is not kept: the layer is stored decompressed, as one made here.
        let _ = std::fs::remove_file(&path);
        stored
    })
    .await
    .map_err(|e| failed(Box::new(e)))?
    .map_err(failed)
}

/// Stores the pulled blob at `path` decompressed under `key`, checked as it streams against
/// `written`'s digest and diff_id.
fn store(
    blobs: &crate::store::BlobCache,
    path: &std::path::Path,
    written: &WrittenLayer,
    key: Option<&Digest>,
    cancel: &crate::image::Cancel,
) -> Result<KeyedLayer, Box<dyn std::error::Error + Send + Sync>> {
    use crate::image::layer::{FileRange, LayerSource};
    let blob = crate::image::Layer::from_blob(
        LayerSource::Blob {
            range: FileRange {
                path: path.to_path_buf(),
                offset: 0,
                size: written.size,
            },
            compression: written.compression,
            digest: Some(written.digest.clone()),
        },
        Some(written.diff_id.clone()),
        written.digest.to_string(),
    );
    // The compressed blob is not remembered for compressed outputs: its level is unknown, and
    // an output must get the bytes a build here would give.
    Ok(blobs.put_layer(key, |out| {
        blob.write_to(out, crate::image::Encoding::Uncompressed, cancel)
            .map(drop)
            .map_err(std::io::Error::other)
    })?)
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
    built: &[&super::BuiltImage],
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
        let message = format!(
            "the layer cache `{}` was not written: {source}",
            to.reference
        );
        let mut cause = std::error::Error::source(&source);
        let mut full = message;
        while let Some(c) = cause {
            full.push_str(&format!(": {c}"));
            cause = c.source();
        }
        ctx.reporter().warning(&full);
    }
}

/// Pushes the entry; returns its tag.
async fn write_entry(
    to: &CacheTo,
    built: &[&super::BuiltImage],
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

/// With `--verify-cache`, takes every remote hit out of `found` (so its layer is made here from
/// its packages) and returns them, by planned layer, for [`verify`].
pub(crate) fn set_aside(b: &Builder, found: &mut [Option<Found>]) -> Vec<(usize, RemoteLayer)> {
    if !b.verify_cache {
        return Vec::new();
    }
    let mut aside = Vec::new();
    for (i, f) in found.iter_mut().enumerate() {
        if let Some(Found::Remote(r)) = f {
            aside.push((i, r.clone()));
            *f = None;
        }
    }
    aside
}

/// Compares each layer set aside by [`set_aside`] with the layer made here from its packages:
/// one whose diff_id differs is named in a warning (the image has the layer made here).
pub(crate) fn verify(
    ctx: &Context,
    plan: &super::plan::Plan,
    found: &[Option<Found>],
    aside: &[(usize, RemoteLayer)],
) {
    for (i, remote) in aside {
        let Some(Found::Made(made)) = &found[*i] else {
            continue;
        };
        if made.diff_id != remote.written.diff_id {
            let layer = &plan.layers[*i];
            ctx.reporter().warning(&format!(
                "--verify-cache: the layer cache `{}` holds another layer ({}, diff_id {}) under \
                 the key {} of {}, whose packages give diff_id {}: that cache is not to be \
                 trusted; the image has the layer made here",
                remote.origin,
                remote.written.digest,
                remote.written.diff_id,
                layer
                    .key
                    .as_ref()
                    .map(Digest::to_string)
                    .unwrap_or_default(),
                layer.description,
                made.diff_id
            ));
        }
    }
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
    let read = |source| CacheError::Read {
        reference: reference.to_string(),
        source,
    };
    let manifests =
        match crate::transport::registry::read_manifest(reference, platform, session).await {
            Ok((manifest, _)) => vec![(manifest, reference.clone())],
            Err(crate::transport::Error::NotFound { .. }) => {
                entries(reference, platform, session).await.map_err(read)?
            }
            Err(e) => return Err(read(e)),
        };
    let mut summaries = Vec::new();
    for (manifest, found_in) in manifests {
        let mut packages = 0;
        for record in records_of(&manifest) {
            let path = crate::transport::registry::download_blob(
                &found_in,
                &record.digest,
                record.size,
                session,
            )
            .await
            .map_err(read)?;
            packages += parse_record(&path)
                .map_err(|reason| CacheError::Record {
                    reference: found_in.to_string(),
                    digest: record.digest.clone(),
                    reason,
                })?
                .len();
        }
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
