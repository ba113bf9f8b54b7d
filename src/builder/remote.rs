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

/// The record's format, which a reader checks before it trusts any field.
const RECORD_FORMAT: &str = "conda-docker cache record v1";
/// The most bytes a record may hold, compressed and decompressed.
const RECORD_CAP: u64 = 256 << 20;

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
        cache: b.blob_cache(),
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
    let (manifest, _) = crate::transport::registry::read_manifest(reference, platform, session)
        .await
        .map_err(read)?;
    let Some(record) = record_descriptor(&manifest) else {
        return Ok(());
    };
    let path =
        crate::transport::registry::download_blob(reference, &record.digest, record.size, session)
            .await
            .map_err(read)?;
    let packages = parse_record(&path).map_err(|reason| CacheError::Record {
        reference: reference.to_string(),
        digest: record.digest.clone(),
        reason,
    })?;
    caches.contents.extend(packages);
    caches.layers.extend(keyed_layers(&manifest, reference));
    Ok(())
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

/// Where the manifest's cache record is: named by its annotations (an image), or one of its
/// layers (a cache artifact).
fn record_descriptor(manifest: &Manifest) -> Option<Descriptor> {
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
        .or_else(|| {
            manifest
                .layers
                .iter()
                .find(|d| d.media_type == RECORD_TYPE)
                .cloned()
        })
        .filter(|d| d.size <= RECORD_CAP)
}

/// What a record says each package holds, each checked as a package's own files would be.
fn parse_record(path: &std::path::Path) -> Result<HashMap<String, Arc<PackageContents>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(file)
        .take(RECORD_CAP + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    if json.len() as u64 > RECORD_CAP {
        return Err(format!("it holds more than {} MiB", RECORD_CAP >> 20));
    }
    let record: RecordIn = serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
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
    let blobs = b.blob_cache();
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
