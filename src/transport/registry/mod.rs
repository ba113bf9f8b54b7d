//! Registries (the OCI distribution API): pull images and push them, as `docker pull/push` do.
//!
//! Pull reads Docker schema 2 and OCI manifests, manifest lists and indexes (picking the entry
//! for the platform), and keeps every blob in a [`BlobCache`] after checking its digest: a
//! second pull of the same base transfers no layer, and a digest reference needs no network.
//! Push checks each blob with HEAD first, mounts layers pulled from another repository of the
//! same registry, streams uploads from disk, and puts the manifest last, so a tag never points
//! at missing blobs.
//!
//! Our own client on `reqwest` rather than `oci-client`: that one has no identity-token flow,
//! treats a declined mount (202) as an error and cannot upload from a byte range of a file.

pub mod auth;
pub mod client;

use std::io::Write;

use reqwest::{Method, StatusCode};

pub use super::blob_cache::BlobCache;
pub use auth::Credential;
pub use client::{Client, RegistryOptions};

use super::{WrittenImage, WrittenIndex};
use crate::image::layer::{FileRange, LayerSource};
use crate::image::manifest::{Index, Manifest, describe_all, for_platform, is_index};
use crate::image::resolve::ResolvedImage;
use crate::image::{
    Cancel, ConfigFile, Digest, Encoding, Error, Image, Layer, Platform, Reference, Result,
    media_type,
};
use crate::reporter::Reporter;
use client::{header, scope};

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// What a push did.
#[derive(Clone, Debug, Default)]
pub struct PushStats {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub skipped: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Layers whose compressed form was reused from an earlier push (not compressed again).
    pub compressed_reused: usize,
}

/// Reads the body of an error answer, shortened, for messages.
async fn error_body(response: reqwest::Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    format!("{status} {}", body.trim())
}

async fn fetch_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    cache: &BlobCache,
) -> Result<(Vec<u8>, Digest)> {
    if let Ok(digest) = reference.parse::<Digest>()
        && let Some(bytes) = cache.manifest(&digest)
    {
        return Ok((bytes, digest));
    }
    let scopes = [scope(repo, "pull")];
    let response = client
        .send(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &scopes,
            |r| r.header("Accept", MANIFEST_ACCEPT),
        )
        .await?;
    if response.status() == StatusCode::NOT_FOUND {
        let available = list_tags(client, repo).await;
        return Err(Error::NotFound {
            location: format!("{}/{repo}", client.registry()),
            wanted: reference.to_string(),
            available,
        });
    }
    if !response.status().is_success() {
        return Err(client.error(format!(
            "manifest `{repo}:{reference}`: {}",
            error_body(response).await
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| client.error(format!("reading manifest `{repo}:{reference}`: {e}")))?
        .to_vec();
    let digest = Digest::of(&bytes);
    if let Ok(expected) = reference.parse::<Digest>()
        && expected != digest
    {
        return Err(Error::DigestMismatch {
            what: "digest",
            layer: format!("manifest {}/{repo}@{expected}", client.registry()),
            expected,
            actual: digest,
        });
    }
    cache.put_manifest(&bytes)?;
    Ok((bytes, digest))
}

async fn list_tags(client: &Client, repo: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Tags {
        tags: Option<Vec<String>>,
    }
    let scopes = [scope(repo, "pull")];
    let Ok(response) = client
        .send(
            Method::GET,
            &format!("/v2/{repo}/tags/list"),
            &scopes,
            |r| r,
        )
        .await
    else {
        return "no tags that could be listed".into();
    };
    match response.json::<Tags>().await.ok().and_then(|t| t.tags) {
        Some(tags) if !tags.is_empty() => {
            let mut tags = tags;
            tags.sort();
            let more = tags.len().saturating_sub(20);
            tags.truncate(20);
            let mut s = tags.join(", ");
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            s
        }
        _ => "no tags (the repository does not exist or is empty)".into(),
    }
}

/// Downloads a blob into the cache (unless there), checking its digest; returns its path.
async fn fetch_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<std::path::PathBuf> {
    let path = cache.blob_path(digest);
    if path.exists() {
        return Ok(path);
    }
    let scopes = [scope(repo, "pull")];
    let mut response = client
        .send(
            Method::GET,
            &format!("/v2/{repo}/blobs/{digest}"),
            &scopes,
            |r| r,
        )
        .await?;
    if !response.status().is_success() {
        return Err(client.error(format!(
            "blob {digest} of `{repo}`: {}",
            error_body(response).await
        )));
    }
    let temp = cache.temp_blob()?;
    let mut writer =
        crate::image::digest::HashingWriter::new(std::io::BufWriter::new(temp.as_file()));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| client.error(format!("downloading blob {digest} of `{repo}`: {e}")))?
    {
        cancel.check().map_err(Error::io("downloading", &path))?;
        writer
            .write_all(&chunk)
            .map_err(Error::io("writing", temp.path()))?;
    }
    let (actual, _, mut inner) = writer.finish();
    inner.flush().map_err(Error::io("writing", temp.path()))?;
    drop(inner);
    if &actual != digest {
        return Err(Error::DigestMismatch {
            what: "digest",
            layer: format!("blob from {}/{repo}", client.registry()),
            expected: digest.clone(),
            actual,
        });
    }
    cache.commit(temp, digest)
}

fn media_type_of(bytes: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
    if probe.schema_version == Some(1) {
        return Err(
            "Docker schema 1 manifests are not supported; push the image again with a current tool"
                .into(),
        );
    }
    Ok(probe.media_type.unwrap_or_else(|| {
        if probe.manifests.is_some() {
            media_type::OCI_INDEX
        } else {
            media_type::OCI_MANIFEST
        }
        .to_string()
    }))
}

/// Pulls `reference` for `platform`, keeping its blobs in `cache`.
pub async fn pull(
    reference: &Reference,
    platform: &Platform,
    options: &RegistryOptions,
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<Image> {
    let client = Client::new(reference.registry(), options)?;
    let repo = reference.repository();
    let wanted = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference.tag_or_latest().to_string(),
    };
    let (mut bytes, mut digest) = fetch_manifest(&client, repo, &wanted, cache).await?;
    for _ in 0..4 {
        let media =
            media_type_of(&bytes).map_err(|e| client.error(format!("`{reference}`: {e}")))?;
        if !is_index(&media) {
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| client.error(format!("manifest {digest} of `{reference}`: {e}")))?;
            return image_from_manifest(&client, reference, manifest, cache, cancel).await;
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| client.error(format!("index {digest} of `{reference}`: {e}")))?;
        let entry = for_platform(&index.manifests, platform).ok_or_else(|| Error::NotFound {
            location: reference.to_string(),
            wanted: format!("platform {platform}"),
            available: describe_all(&index.manifests),
        })?;
        (bytes, digest) = fetch_manifest(&client, repo, &entry.digest.to_string(), cache).await?;
    }
    Err(client.error(format!("`{reference}`: indexes nested too deep")))
}

async fn image_from_manifest(
    client: &Client,
    reference: &Reference,
    manifest: Manifest,
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<Image> {
    let repo = reference.repository();
    let config_path = fetch_blob(client, repo, &manifest.config.digest, cache, cancel).await?;
    let config_bytes = std::fs::read(&config_path).map_err(Error::io("reading", &config_path))?;
    let config: ConfigFile = serde_json::from_slice(&config_bytes).map_err(|e| {
        client.error(format!(
            "config {} of `{reference}`: {e}",
            manifest.config.digest
        ))
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(client.error(format!(
            "`{reference}`: the manifest lists {} layers but the config {} diff_ids",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, (d, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let compression =
            crate::image::Compression::from_media_type(&d.media_type).ok_or_else(|| {
                client.error(format!(
                    "layer {} has unsupported media type `{}`",
                    d.digest, d.media_type
                ))
            })?;
        let path = fetch_blob(client, repo, &d.digest, cache, cancel).await?;
        layers.push(
            Layer::from_blob(
                LayerSource::Blob {
                    range: FileRange {
                        path,
                        offset: 0,
                        size: d.size,
                    },
                    compression,
                    digest: Some(d.digest.clone()),
                },
                Some(diff_id.clone()),
                format!("layer {} of {reference}", i + 1),
            )
            .with_origin(reference.clone()),
        );
    }
    let mut image = Image::from_parts(config, layers).map_err(|r| client.error(r))?;
    *image.annotations_mut() = manifest.annotations;
    Ok(image)
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

enum Body {
    File(FileRange),
    Bytes(Vec<u8>),
}

/// What [`push_blob`] did.
enum Pushed {
    Skipped,
    Mounted,
    Uploaded,
}

impl PushStats {
    fn count(&mut self, pushed: Pushed) {
        match pushed {
            Pushed::Skipped => self.skipped += 1,
            Pushed::Mounted => self.mounted += 1,
            Pushed::Uploaded => self.uploaded += 1,
        }
    }
}

/// How many blobs are checked or uploaded at once (Docker pushes a few layers at a time).
const CONCURRENT_BLOBS: usize = 6;

/// Uploads one blob unless the registry has it, mounting it from `origin` when possible.
async fn push_blob(
    client: &Client,
    repo: &str,
    digest: &Digest,
    body: Body,
    origin: Option<&Reference>,
) -> Result<Pushed> {
    let push_scope = vec![scope(repo, "pull,push")];
    let head = client
        .send(
            Method::HEAD,
            &format!("/v2/{repo}/blobs/{digest}"),
            &push_scope,
            |r| r,
        )
        .await?;
    if head.status().is_success() {
        return Ok(Pushed::Skipped);
    }
    let mut location = None;
    if let Some(origin) =
        origin.filter(|o| o.registry() == client.registry() && o.repository() != repo)
    {
        let scopes = vec![scope(repo, "pull,push"), scope(origin.repository(), "pull")];
        let path = format!(
            "/v2/{repo}/blobs/uploads/?mount={digest}&from={}",
            origin.repository()
        );
        let response = client.send(Method::POST, &path, &scopes, |r| r).await?;
        match response.status() {
            StatusCode::CREATED => return Ok(Pushed::Mounted),
            StatusCode::ACCEPTED => location = header(response.headers(), "location"),
            _ => {}
        }
    }
    let location = match location {
        Some(l) => l,
        None => {
            let response = client
                .send(
                    Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/"),
                    &push_scope,
                    |r| r,
                )
                .await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(client.error(format!(
                    "starting the upload of {digest} to `{repo}`: {}",
                    error_body(response).await
                )));
            }
            header(response.headers(), "location")
                .ok_or_else(|| client.error("the registry started an upload without a Location"))?
        }
    };
    let url = with_digest(&client.url(&location).await?, digest);
    let response = client
        .send(Method::PUT, &url, &push_scope, |r| {
            let r = r.header("Content-Type", "application/octet-stream");
            match &body {
                Body::Bytes(b) => r.body(b.clone()),
                Body::File(range) => match file_body(range) {
                    Ok((body, len)) => r.header("Content-Length", len).body(body),
                    Err(e) => r.header("X-Conda-Docker-Error", e.to_string()),
                },
            }
        })
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(client.error(format!(
            "uploading {digest} to `{repo}`: {}",
            error_body(response).await
        )));
    }
    Ok(Pushed::Uploaded)
}

/// A streaming request body reading `range` from disk.
fn file_body(range: &FileRange) -> std::io::Result<(reqwest::Body, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(&range.path)?;
    file.seek(SeekFrom::Start(range.offset))?;
    let reader = tokio::fs::File::from_std(file);
    let stream = tokio_util::io::ReaderStream::with_capacity(
        tokio::io::AsyncReadExt::take(reader, range.size),
        256 * 1024,
    );
    Ok((reqwest::Body::wrap_stream(stream), range.size))
}

/// Pushes `image` to `reference` (its tag, or its digest); the manifest goes last.
pub async fn push(
    image: &Image,
    reference: &Reference,
    options: &RegistryOptions,
    cache: &BlobCache,
    encoding: Encoding,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<(WrittenImage, PushStats)> {
    let client = Client::new(reference.registry(), options)?;
    let mut stats = PushStats::default();
    let resolved = push_image(
        &client,
        image,
        reference,
        Some(&tag_or_digest(reference)),
        cache,
        encoding,
        cancel,
        reporter,
        &mut stats,
    )
    .await?;
    Ok((WrittenImage::from_resolved(resolved), stats))
}

/// Pushes a multi-platform image to `reference`: each image by its digest, then an OCI index of
/// them under the tag, so the tag never names a platform whose image is missing.
pub async fn push_index(
    images: &[&Image],
    reference: &Reference,
    options: &RegistryOptions,
    cache: &BlobCache,
    encoding: Encoding,
    cancel: &Cancel,
    reporter: &dyn Reporter,
) -> Result<(WrittenIndex, PushStats)> {
    let client = Client::new(reference.registry(), options)?;
    let mut stats = PushStats::default();
    let mut resolved = Vec::new();
    for image in images {
        resolved.push(
            push_image(
                &client, image, reference, None, cache, encoding, cancel, reporter, &mut stats,
            )
            .await?,
        );
    }
    let index = crate::image::resolve::platform_index(&resolved).to_bytes();
    let digest = put_manifest(
        &client,
        reference,
        &tag_or_digest(reference),
        media_type::OCI_INDEX,
        index,
    )
    .await?;
    Ok((
        WrittenIndex {
            digest,
            images: resolved
                .into_iter()
                .map(WrittenImage::from_resolved)
                .collect(),
            push: None,
        },
        stats,
    ))
}

/// The tag a push names, else its digest, else `latest`.
fn tag_or_digest(reference: &Reference) -> String {
    reference
        .tag()
        .map(str::to_string)
        .unwrap_or_else(|| match reference.digest() {
            Some(d) => d.to_string(),
            None => "latest".into(),
        })
}

/// Pushes the blobs of `image`, then its manifest under `target` (else its own digest);
/// returns it as written.
#[allow(clippy::too_many_arguments)]
async fn push_image(
    client: &Client,
    image: &Image,
    reference: &Reference,
    target: Option<&str>,
    cache: &BlobCache,
    encoding: Encoding,
    cancel: &Cancel,
    reporter: &dyn Reporter,
    stats: &mut PushStats,
) -> Result<ResolvedImage> {
    let repo = reference.repository();
    let resolution = crate::image::resolve::resolve(image, encoding, Some(cache));
    let mut written_layers = Vec::new();
    let total = resolution.layers.len();
    // Each blob is placed (compressed when it must be) in turn, and checked or uploaded while
    // the next is placed, a few at a time.
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for (i, blob) in resolution.layers.iter().enumerate() {
        reporter.layer_started(i, total, blob.layer());
        let placed = blocking(|| blob.file(false, cancel))?
            .ok_or_else(|| Error::invalid(blob.layer().description(), "no blob file to push"))?;
        stats.compressed_reused += usize::from(placed.reused);
        cancel
            .check()
            .map_err(Error::io("pushing", reference.to_string()))?;
        let digest = placed.written.digest.clone();
        let range = placed.range.clone();
        let origin = blob.layer().origin();
        in_flight.push(async move {
            push_blob(client, repo, &digest, Body::File(range), origin)
                .await
                .map(|pushed| (i, pushed))
        });
        written_layers.push(placed.written);
        while in_flight.len() >= CONCURRENT_BLOBS {
            if let Some(done) = futures::StreamExt::next(&mut in_flight).await {
                let (i, pushed) = done?;
                stats.count(pushed);
                reporter.layer_finished(i, resolution.layers[i].layer(), &written_layers[i]);
            }
        }
    }
    while let Some(done) = futures::StreamExt::next(&mut in_flight).await {
        let (i, pushed) = done?;
        stats.count(pushed);
        reporter.layer_finished(i, resolution.layers[i].layer(), &written_layers[i]);
    }
    drop(in_flight);
    let resolved = resolution.finish(written_layers);
    stats.count(
        push_blob(
            client,
            repo,
            &resolved.config_digest,
            Body::Bytes(resolved.config.clone()),
            None,
        )
        .await?,
    );
    cancel
        .check()
        .map_err(Error::io("pushing", reference.to_string()))?;
    let own_digest = resolved.manifest_digest.to_string();
    put_manifest(
        client,
        reference,
        target.unwrap_or(&own_digest),
        media_type::OCI_MANIFEST,
        resolved.manifest.clone(),
    )
    .await?;
    Ok(resolved)
}

/// PUTs a manifest (or an index) as `target` in `reference`'s repository; returns its digest,
/// checked against the one the registry answers.
async fn put_manifest(
    client: &Client,
    reference: &Reference,
    target: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> Result<Digest> {
    let repo = reference.repository();
    let digest = Digest::of(&bytes);
    let scopes = [scope(repo, "pull,push")];
    let response = client
        .send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{target}"),
            &scopes,
            |r| r.header("Content-Type", content_type).body(bytes.clone()),
        )
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(client.error(format!(
            "putting the manifest for `{reference}`: {}",
            error_body(response).await
        )));
    }
    if let Some(answered) = header(response.headers(), "docker-content-digest")
        && answered != digest.to_string()
    {
        return Err(client.error(format!(
            "stored the manifest as {answered}, but it is {digest}"
        )));
    }
    Ok(digest)
}

/// Runs blocking work (tar, gzip, disk) without stalling the async runtime's other tasks.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
