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

mod entries;
mod record;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use crate::conda::contents::PackageContents;
use crate::image::manifest::Manifest;
use crate::image::{Compression, Digest, Platform, Reference, WrittenLayer};
use crate::store::KeyedLayer;
use crate::transport::{Remote, Session};

use super::lookup::Found;
use super::{Builder, Context, Error};

use entries::entries;
pub(crate) use entries::export;
pub use entries::{CacheSummary, CacheTo, DEFAULT_MAX_ENTRIES, ENTRY_TYPE, summarize};
pub use record::RECORD_TYPE;
pub(crate) use record::kept_record;
use record::{parse_record, records_of};

/// The annotation of a keyed layer's descriptor: its layer key.
pub const LAYER_KEY: &str = "org.conda-docker.layer.key";

/// The annotation of a keyed layer's descriptor: its diff_id (so no config need be read).
pub const LAYER_DIFF_ID: &str = "org.conda-docker.layer.diff_id";

/// The manifest annotation naming the image's cache record blob, by digest.
pub const RECORD: &str = "org.conda-docker.cache.record";

/// The manifest annotation giving the cache record blob's size.
pub const RECORD_SIZE: &str = "org.conda-docker.cache.record.size";

/// How many remote layers are pulled at once.
const CONCURRENT_PULLS: usize = 4;

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
    ctx.reporter().warning(&with_causes(error));
}

/// `error`'s message followed by each of its causes', on one line (as a warning says it).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
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
    for (manifest, found_in) in manifests_of(reference, platform, session).await? {
        caches
            .contents
            .extend(records_in(&manifest, &found_in, session).await?);
        caches.layers.extend(keyed_layers(&manifest, &found_in));
    }
    Ok(())
}

/// The image `reference` names for `platform`, else each `--cache-to` entry under it (none
/// at all is [`CacheError::Read`]), with where each was found.
async fn manifests_of(
    reference: &Reference,
    platform: &Platform,
    session: &Session<'_>,
) -> Result<Vec<(Manifest, Reference)>, CacheError> {
    let read = |source| CacheError::Read {
        reference: reference.to_string(),
        source,
    };
    match crate::transport::registry::read_manifest(reference, platform, session).await {
        Ok((manifest, _)) => Ok(vec![(manifest, reference.clone())]),
        Err(missing @ crate::transport::Error::NotFound { .. }) => {
            let found = entries(reference, platform, session).await.map_err(read)?;
            match found.is_empty() {
                true => Err(read(missing)),
                false => Ok(found),
            }
        }
        Err(e) => Err(read(e)),
    }
}

/// What the cache records of `manifest` (found in `found_in`) say each package holds.
async fn records_in(
    manifest: &Manifest,
    found_in: &Reference,
    session: &Session<'_>,
) -> Result<HashMap<String, Arc<PackageContents>>, CacheError> {
    let mut packages = HashMap::new();
    for record in records_of(manifest) {
        let path = crate::transport::registry::download_blob(
            found_in,
            &record.digest,
            record.size,
            session,
        )
        .await
        .map_err(|source| CacheError::Read {
            reference: found_in.to_string(),
            source,
        })?;
        packages.extend(parse_record(&path).map_err(|reason| CacheError::Record {
            reference: found_in.to_string(),
            digest: record.digest.clone(),
            reason,
        })?);
    }
    Ok(packages)
}

/// The manifest's keyed layers, by key.
pub(super) fn keyed_layers<'a>(
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
