//! Registries (the OCI distribution API): pull images and push them, as `docker pull/push` do.
//!
//! Pull reads Docker schema 2 and OCI manifests, manifest lists and indexes (picking the entry
//! for the platform), and keeps every blob in a [`BlobCache`] after checking its digest: a
//! second pull of the same base transfers no layer, and a digest reference needs no network.
//! Push checks each blob with HEAD first, mounts layers pulled from another repository of the
//! same registry, streams uploads from disk, and puts the manifest last, so a tag never points
//! at missing blobs.
//!
//! Network failures are retried (see [`crate::http`]): a broken download resumes with `Range` where
//! the registry allows it, and a blob upload whose answer was lost is checked with `HEAD`
//! before a new upload starts.
//!
//! Our own client on `reqwest` rather than `oci-client`: that one has no identity-token flow,
//! treats a declined mount (202) as an error and cannot upload from a byte range of a file.

pub mod artifact;
pub mod auth;
pub mod body;
pub mod client;
pub mod reach;

use std::io::Write;

use reqwest::{Method, StatusCode};

pub use crate::http::Timeouts;
pub use auth::Credential;
pub use client::{Client, RegistryOptions};
pub use reach::{Unreachable, check_reachable, probe};

use super::error::{Error, Result};
use super::{Publishable, ReadContext, Session, WriteContext, Written, WrittenImage};
use crate::http::Fault;
use crate::image::layer::{FileRange, LayerSource};
use crate::image::manifest::{Index, Manifest, describe_all, for_platform, is_index};
use crate::image::resolve::ResolvedImage;
use crate::image::{Cancel, ConfigFile, Digest, Encoding, Image, Layer, Reference, media_type};
use crate::reporter::Reporter;
use crate::store::BlobCache;
use body::{InMemory, Sink, Upload};
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

async fn fetch_manifest(
    client: &Client<'_>,
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
    let mut sink = InMemory::default();
    let refused = client
        .download(
            &format!("/v2/{repo}/manifests/{reference}"),
            &scopes,
            None,
            &mut sink,
            &|_| {},
            |r| r.header("Accept", MANIFEST_ACCEPT),
        )
        .await?;
    if let Some(response) = refused {
        if response.status() == StatusCode::NOT_FOUND {
            let available = list_tags(client, repo).await;
            return Err(Error::NotFound {
                registry: client.registry().to_string(),
                repository: repo.to_string(),
                reference: reference.to_string(),
                available,
            });
        }
        return Err(client
            .refused(format!("manifest `{repo}:{reference}`"), response)
            .await);
    }
    let bytes = sink.0;
    let digest = Digest::of(&bytes);
    if let Ok(expected) = reference.parse::<Digest>()
        && expected != digest
    {
        let wrap = client.blob_error("downloading manifest", repo, &expected);
        return Err(wrap(crate::image::Error::DigestMismatch {
            what: "digest",
            layer: "the manifest sent".into(),
            expected,
            actual: digest,
        }));
    }
    cache
        .put_manifest(&bytes)
        .map_err(client.blob_error("storing manifest", repo, &digest))?;
    Ok((bytes, digest))
}

async fn list_tags(client: &Client<'_>, repo: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Tags {
        tags: Option<Vec<String>>,
    }
    let scopes = [scope(repo, "pull")];
    let mut sink = InMemory::default();
    let listed = client
        .download(
            &format!("/v2/{repo}/tags/list"),
            &scopes,
            None,
            &mut sink,
            &|_| {},
            |r| r,
        )
        .await;
    match listed {
        Ok(None) => {}
        Ok(Some(_)) => return "no tags (the repository does not exist or is empty)".into(),
        Err(_) => return "no tags that could be listed".into(),
    }
    match serde_json::from_slice::<Tags>(&sink.0)
        .ok()
        .and_then(|t| t.tags)
    {
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

/// A blob being downloaded into the cache: hashed as it is written, emptied when a download
/// starts again from the first byte.
struct BlobSink<'a> {
    temp: tempfile::NamedTempFile,
    writer: crate::image::digest::HashingWriter<std::io::BufWriter<std::fs::File>>,
    received: u64,
    cancel: &'a Cancel,
}

impl<'a> BlobSink<'a> {
    fn new(temp: tempfile::NamedTempFile, cancel: &'a Cancel) -> crate::image::Result<Self> {
        let writer = Self::writer(&temp)?;
        Ok(Self {
            temp,
            writer,
            received: 0,
            cancel,
        })
    }

    fn writer(
        temp: &tempfile::NamedTempFile,
    ) -> crate::image::Result<crate::image::digest::HashingWriter<std::io::BufWriter<std::fs::File>>>
    {
        let file = temp
            .as_file()
            .try_clone()
            .map_err(crate::image::Error::io("writing", temp.path()))?;
        Ok(crate::image::digest::HashingWriter::new(
            std::io::BufWriter::new(file),
        ))
    }

    /// The digest of what was written, and the file holding it.
    fn finish(self) -> crate::image::Result<(Digest, tempfile::NamedTempFile)> {
        let (digest, _, mut inner) = self.writer.finish();
        inner
            .flush()
            .map_err(crate::image::Error::io("writing", self.temp.path()))?;
        Ok((digest, self.temp))
    }
}

impl Sink for BlobSink<'_> {
    fn append(&mut self, bytes: &[u8]) -> crate::image::Result<()> {
        self.cancel
            .check()
            .map_err(crate::image::Error::io("downloading", self.temp.path()))?;
        self.writer
            .write_all(bytes)
            .map_err(crate::image::Error::io("writing", self.temp.path()))?;
        self.received += bytes.len() as u64;
        Ok(())
    }

    fn restart(&mut self) -> crate::image::Result<()> {
        use std::io::Seek;
        let path = self.temp.path().to_path_buf();
        self.writer
            .flush()
            .map_err(crate::image::Error::io("writing", &path))?;
        let file = self.temp.as_file_mut();
        file.set_len(0)
            .map_err(crate::image::Error::io("writing", &path))?;
        file.rewind()
            .map_err(crate::image::Error::io("writing", &path))?;
        self.writer = Self::writer(&self.temp)?;
        self.received = 0;
        Ok(())
    }

    fn received(&self) -> u64 {
        self.received
    }
}

/// Downloads blob `digest` of `size` bytes into the cache (unless there), resuming a broken
/// transfer and checking the digest of the whole; returns its path.
async fn fetch_blob(
    client: &Client<'_>,
    repo: &str,
    digest: &Digest,
    size: u64,
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<std::path::PathBuf> {
    let path = cache.blob_path(digest);
    if cache.usable(digest, Some(size)) {
        return Ok(path);
    }
    let failed = || client.blob_error("downloading blob", repo, digest);
    let scopes = [scope(repo, "pull")];
    let temp = cache.temp_blob().map_err(failed())?;
    let mut sink = BlobSink::new(temp, cancel).map_err(failed())?;
    let reporter = client.reporter();
    reporter.blob_downloaded(digest, 0, size);
    let refused = client
        .download(
            &format!("/v2/{repo}/blobs/{digest}"),
            &scopes,
            Some(size),
            &mut sink,
            &|done| reporter.blob_downloaded(digest, done, size),
            |r| r,
        )
        .await
        .map_err(|e| match e {
            Error::Image(e) => failed()(e),
            e => e,
        })?;
    if let Some(response) = refused {
        return Err(client
            .refused(format!("blob {digest} of `{repo}`"), response)
            .await);
    }
    let (actual, temp) = sink.finish().map_err(failed())?;
    if &actual != digest {
        return Err(failed()(crate::image::Error::DigestMismatch {
            what: "digest",
            layer: "the downloaded blob".into(),
            expected: digest.clone(),
            actual,
        }));
    }
    cache.commit(temp, digest).map_err(failed())
}

/// The media type of the manifest or index `bytes`, `what` (`REF`) for messages.
fn media_type_of(client: &Client<'_>, what: &str, bytes: &[u8]) -> Result<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(client.malformed(format!("the manifest of `{what}`")))?;
    if probe.schema_version == Some(1) {
        return Err(client.unexpected(
            format!("`{what}`"),
            "Docker schema 1 manifests are not supported; push the image again with a current tool",
        ));
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

/// A client for `reference`'s registry, with the session's settings and reporter, and the
/// session's blob store.
fn connect<'a>(
    reference: &Reference,
    session: &Session<'a>,
) -> Result<(Client<'a>, &'a BlobCache)> {
    let remote = session.remote_for(reference)?;
    let client = Client::new(reference.registry(), &remote.options)?;
    Ok((client.with_reporter(session.reporter), &remote.cache))
}

/// The registry host `login` and `logout` take: Docker Hub's spellings are `docker.io`, and a
/// scheme or trailing slash is dropped.
pub fn login_host(arg: &str) -> String {
    match arg {
        "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1/" => {
            "docker.io".to_string()
        }
        other => other
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    }
}

/// `docker login`: checks `username` and `password` against `registry` (as [`login_host`]
/// names it), reached with `options`, then stores them where Docker would (see
/// [`auth::store`]). Returns where they went.
pub async fn login(
    registry: &str,
    username: &str,
    password: &str,
    options: &RegistryOptions,
) -> Result<std::path::PathBuf> {
    let registry = login_host(registry);
    let options = RegistryOptions {
        credential: Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }),
        ..options.clone()
    };
    Client::new(&registry, &options)?.check_login().await?;
    auth::store(&registry, username, password, &options.auth)
        .map_err(|source| Error::StoreLogin { registry, source })
}

/// Pulls `reference` for the context's platform, keeping its blobs in the context's blob
/// store; downloads and retries are told to its reporter.
pub async fn pull(reference: &Reference, ctx: &ReadContext<'_>) -> Result<Image> {
    let (client, cache) = connect(reference, &ctx.session)?;
    let (manifest, _) = manifest_for(&client, reference, ctx.platform, cache).await?;
    image_from_manifest(&client, reference, manifest, cache, ctx.session.cancel).await
}

/// The manifest `reference` names for `platform` (an index followed to that platform's entry)
/// and its digest, without its blobs: what a remote layer cache is read from.
pub async fn read_manifest(
    reference: &Reference,
    platform: &crate::image::Platform,
    session: &Session<'_>,
) -> Result<(Manifest, Digest)> {
    let (client, cache) = connect(reference, session)?;
    manifest_for(&client, reference, platform, cache).await
}

/// Downloads blob `digest` of `size` bytes from `reference`'s repository into the session's
/// blob store, checked against its digest (nothing when it is there already); its path.
pub async fn download_blob(
    reference: &Reference,
    digest: &Digest,
    size: u64,
    session: &Session<'_>,
) -> Result<std::path::PathBuf> {
    let (client, cache) = connect(reference, session)?;
    let repo = reference.repository();
    fetch_blob(&client, repo, digest, size, cache, session.cancel).await
}

/// [`read_manifest`] over a connected client.
async fn manifest_for(
    client: &Client<'_>,
    reference: &Reference,
    platform: &crate::image::Platform,
    cache: &BlobCache,
) -> Result<(Manifest, Digest)> {
    let repo = reference.repository();
    let wanted = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference.tag_or_latest().to_string(),
    };
    let (mut bytes, mut digest) = fetch_manifest(client, repo, &wanted, cache).await?;
    for _ in 0..4 {
        let media = media_type_of(client, &reference.to_string(), &bytes)?;
        if !is_index(&media) {
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .map_err(client.malformed(format!("manifest {digest} of `{reference}`")))?;
            return Ok((manifest, digest));
        }
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(client.malformed(format!("index {digest} of `{reference}`")))?;
        let entry = for_platform(&index.manifests, platform).ok_or_else(|| {
            crate::image::Error::NotFound {
                location: reference.to_string(),
                wanted: format!("platform {platform}"),
                available: describe_all(&index.manifests),
            }
        })?;
        (bytes, digest) = fetch_manifest(client, repo, &entry.digest.to_string(), cache).await?;
    }
    Err(client.unexpected(format!("`{reference}`"), "indexes nested too deep"))
}

async fn image_from_manifest(
    client: &Client<'_>,
    reference: &Reference,
    manifest: Manifest,
    cache: &BlobCache,
    cancel: &Cancel,
) -> Result<Image> {
    let repo = reference.repository();
    let config = &manifest.config;
    let config_path = fetch_blob(client, repo, &config.digest, config.size, cache, cancel).await?;
    let config_bytes = crate::capped::read_file(&config_path, crate::capped::JSON_CAP)
        .map_err(crate::image::Error::io("reading", &config_path))
        .map_err(client.blob_error("reading config", repo, &config.digest))?;
    let config: ConfigFile = serde_json::from_slice(&config_bytes).map_err(client.malformed(
        format!("config {} of `{reference}`", manifest.config.digest),
    ))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(client.unexpected(
            format!("`{reference}`"),
            format!(
                "the manifest lists {} layers but the config {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
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
                client.unexpected(
                    format!("layer {}", d.digest),
                    format!("unsupported media type `{}`", d.media_type),
                )
            })?;
        let path = fetch_blob(client, repo, &d.digest, d.size, cache, cancel).await?;
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
    let mut image = Image::from_parts(config, layers)
        .map_err(|reason| client.unexpected(format!("`{reference}`"), reason))?;
    *image.annotations_mut() = manifest.annotations;
    Ok(image)
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
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

/// True when the registry holds blob `digest` in `repo`.
async fn has_blob(client: &Client<'_>, repo: &str, digest: &Digest) -> Result<bool> {
    let scopes = [scope(repo, "pull,push")];
    let path = format!("/v2/{repo}/blobs/{digest}");
    let head = client.send(Method::HEAD, &path, &scopes, |r| r).await?;
    Ok(head.status().is_success())
}

/// Uploads one blob unless the registry has it, mounting it from `origin` when possible. When
/// the final `PUT` fails in a way that may pass (its answer lost, 429, 5xx) the registry is
/// asked with `HEAD` whether it stored the blob anyway, and a new upload starts if not (the
/// old upload URL may be closed).
async fn push_blob(
    client: &Client<'_>,
    repo: &str,
    digest: &Digest,
    body: Upload,
    origin: Option<&Reference>,
) -> Result<Pushed> {
    if has_blob(client, repo, digest).await? {
        return Ok(Pushed::Skipped);
    }
    let pushed = |how: Pushed| {
        client
            .reporter()
            .blob_pushed(&format!("{}/{repo}", client.registry()), digest);
        Ok(how)
    };
    let push_scope = vec![scope(repo, "pull,push")];
    let request = format!("uploading {digest} to `{repo}`");
    let mut retries = client.retries();
    loop {
        let location = match start_upload(client, repo, digest, origin).await? {
            Some(location) => location,
            None => return pushed(Pushed::Mounted),
        };
        let url = with_digest(&client.url(&location).await?, digest);
        let fault = match client
            .upload(&url, &push_scope, &body, &mut retries)
            .await?
        {
            Ok(response) if response.status() == StatusCode::CREATED => {
                return pushed(Pushed::Uploaded);
            }
            Ok(response) => {
                let refused = client.refused(request, response).await;
                return Err(damaged_upload(refused, &body, digest));
            }
            Err(fault) => fault,
        };
        if has_blob(client, repo, digest).await? {
            tracing::debug!("{request}: {fault}, but the registry has the blob");
            return pushed(Pushed::Uploaded);
        }
        if !retries.again(&request, &fault).await {
            return Err(match fault {
                Fault::Status { response, .. } => client.refused(request, *response).await,
                fault => client.network_error(&request, retries.attempts(), fault),
            });
        }
    }
}

/// `refused`, or, when the registry answered `DIGEST_INVALID` to bytes uploaded from a stored
/// blob, that blob's damage (the build drops it and makes it again).
fn damaged_upload(refused: Error, body: &Upload, digest: &Digest) -> Error {
    match (&refused, body) {
        (Error::Status { answer, .. }, Upload::File(range))
            if answer.contains("DIGEST_INVALID") =>
        {
            Error::Image(crate::image::Error::StoredBlobDamaged {
                path: range.path.clone(),
                digest: digest.clone(),
                reason: format!("the registry refused its bytes: {answer}"),
            })
        }
        _ => refused,
    }
}

/// Places a blob only a registry holds (a layer found in a remote cache) in `repo`: found
/// there already, or mounted from the repository it was found in. Its bytes are not here, so
/// it is never uploaded: a registry that has neither is [`crate::image::Error::RemoteOnly`].
async fn place_remote(
    client: &Client<'_>,
    repo: &str,
    digest: &Digest,
    layer: &Layer,
) -> Result<Pushed> {
    if has_blob(client, repo, digest).await? {
        return Ok(Pushed::Skipped);
    }
    if let Some(origin) = layer
        .origin()
        .filter(|o| o.registry() == client.registry() && o.repository() != repo)
        && start_upload(client, repo, digest, Some(origin))
            .await?
            .is_none()
    {
        client
            .reporter()
            .blob_pushed(&format!("{}/{repo}", client.registry()), digest);
        return Ok(Pushed::Mounted);
    }
    Err(Error::Image(crate::image::Error::RemoteOnly {
        layer: layer.description().to_string(),
        digest: digest.clone(),
        registry: layer
            .origin()
            .map(|o| o.to_string())
            .unwrap_or_else(|| client.registry().to_string()),
    }))
}

/// Starts an upload of `digest` to `repo`, mounting it from `origin` (another repository of
/// the same registry) when the registry will: the upload URL, or `None` when mounted.
async fn start_upload(
    client: &Client<'_>,
    repo: &str,
    digest: &Digest,
    origin: Option<&Reference>,
) -> Result<Option<String>> {
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
            StatusCode::CREATED => return Ok(None),
            StatusCode::ACCEPTED => {
                if let Some(location) = header(response.headers(), "location") {
                    return Ok(Some(location));
                }
            }
            _ => {}
        }
    }
    let scopes = [scope(repo, "pull,push")];
    let response = client
        .send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &scopes,
            |r| r,
        )
        .await?;
    let what = format!("starting the upload of {digest} to `{repo}`");
    if response.status() != StatusCode::ACCEPTED {
        return Err(client.refused(what, response).await);
    }
    header(response.headers(), "location")
        .map(Some)
        .ok_or_else(|| client.unexpected(what, "the registry started an upload without a Location"))
}

/// Pushes `what` to `reference` (its tag, or its digest): one image, its manifest last; or a
/// multi-platform image, each image by its digest and then an OCI index of them under the tag,
/// so the tag never names a platform whose image is missing.
pub async fn push(
    what: Publishable<'_>,
    reference: &Reference,
    ctx: &WriteContext<'_>,
) -> Result<Written> {
    let (client, cache) = connect(reference, &ctx.session)?;
    let encoding = ctx
        .options
        .encoding(&super::Location::Registry(reference.clone()));
    let push = Push {
        client: &client,
        reference,
        cache,
        encoding,
        cancel: ctx.session.cancel,
        reporter: ctx.session.reporter,
    };
    let tag = tag_or_digest(reference);
    let mut stats = PushStats::default();
    let mut resolved = Vec::new();
    let index = match what {
        Publishable::Image(image) => {
            resolved.push(push.image(image, Some(&tag), &mut stats).await?);
            None
        }
        Publishable::Index(images) => {
            for image in images {
                resolved.push(push.image(image, None, &mut stats).await?);
            }
            let index = crate::image::resolve::platform_index(&resolved).to_bytes();
            Some(put_manifest(&client, reference, &tag, media_type::OCI_INDEX, index).await?)
        }
    };
    let images = resolved
        .into_iter()
        .map(WrittenImage::from_resolved)
        .collect();
    Ok(Written {
        push: Some(stats),
        ..Written::new(super::Location::Registry(reference.clone()), images, index)
    })
}

/// Attaches `artifacts` to the manifest `subject` in `reference`'s repository, as OCI 1.1
/// referrers: each artifact's blobs and manifest (pushed by digest), then, for a registry
/// without the referrers API, the spec's fallback index under the tag `sha256-<hex>` (kept with
/// the referrers already there). Returns the artifact manifests' digests.
pub async fn push_referrers(
    subject: &crate::image::manifest::Descriptor,
    artifacts: &[crate::image::referrer::Artifact],
    reference: &Reference,
    ctx: &WriteContext<'_>,
) -> Result<Vec<Digest>> {
    use crate::image::referrer::{artifact_manifest, fallback_tag, with_referrers};
    let (client, cache) = connect(reference, &ctx.session)?;
    let repo = reference.repository();
    let mut descriptors = Vec::new();
    for artifact in artifacts {
        let made = artifact_manifest(artifact, subject);
        for (blob, bytes) in &made.blobs {
            push_blob(
                &client,
                repo,
                &blob.digest,
                Upload::Bytes(bytes.clone()),
                None,
            )
            .await?;
        }
        let digest = made.descriptor.digest.to_string();
        put_manifest(
            &client,
            reference,
            &digest,
            media_type::OCI_MANIFEST,
            made.manifest,
        )
        .await?;
        descriptors.push(made.descriptor);
    }
    if !has_referrers_api(&client, repo, &subject.digest).await? {
        let tag = fallback_tag(&subject.digest);
        let existing = match fetch_manifest(&client, repo, &tag, cache).await {
            Ok((bytes, _)) => serde_json::from_slice::<Index>(&bytes).ok(),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let index = with_referrers(existing, &descriptors);
        put_manifest(
            &client,
            reference,
            &tag,
            media_type::OCI_INDEX,
            index.to_bytes(),
        )
        .await?;
    }
    Ok(descriptors.into_iter().map(|d| d.digest).collect())
}

/// Whether the registry answers the OCI 1.1 referrers API for `digest` in `repo`.
async fn has_referrers_api(client: &Client<'_>, repo: &str, digest: &Digest) -> Result<bool> {
    let scopes = [scope(repo, "pull")];
    let path = format!("/v2/{repo}/referrers/{digest}");
    let response = client.send(Method::GET, &path, &scopes, |r| r).await?;
    let is_index = header(response.headers(), "content-type")
        .is_some_and(|t| t.starts_with(media_type::OCI_INDEX));
    Ok(response.status().is_success() && is_index)
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

/// One push's client, destination, blob store and context, shared by its images.
struct Push<'a> {
    client: &'a Client<'a>,
    reference: &'a Reference,
    cache: &'a BlobCache,
    encoding: Encoding,
    cancel: &'a Cancel,
    reporter: &'a dyn Reporter,
}

impl Push<'_> {
    /// Pushes the blobs of `image`, then its manifest under `target` (else its own digest);
    /// returns it as written.
    async fn image(
        &self,
        image: &Image,
        target: Option<&str>,
        stats: &mut PushStats,
    ) -> Result<ResolvedImage> {
        let (client, reference, cancel) = (self.client, self.reference, self.cancel);
        let repo = reference.repository();
        let resolution = crate::image::resolve::resolve(image, self.encoding, Some(self.cache));
        let written_layers = self.layers(&resolution, stats).await?;
        let resolved = resolution.finish(written_layers);
        stats.count(
            push_blob(
                client,
                repo,
                &resolved.config_digest,
                Upload::Bytes(resolved.config.clone()),
                None,
            )
            .await?,
        );
        cancel
            .check()
            .map_err(crate::image::Error::io("pushing", reference.to_string()))?;
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

    /// Places each layer's blob (compressed when it must be) in turn, and checks or uploads
    /// it while the next is placed, a few at a time; returns them as written.
    async fn layers(
        &self,
        resolution: &crate::image::resolve::Resolution<'_>,
        stats: &mut PushStats,
    ) -> Result<Vec<crate::image::WrittenLayer>> {
        let (client, reporter, cancel) = (self.client, self.reporter, self.cancel);
        let repo = self.reference.repository();
        let mut written_layers = Vec::new();
        let total = resolution.layers.len();
        let mut in_flight: futures::stream::FuturesUnordered<
            futures::future::BoxFuture<'_, Result<(usize, Pushed)>>,
        > = futures::stream::FuturesUnordered::new();
        for (i, blob) in resolution.layers.iter().enumerate() {
            reporter.layer_started(i, total, blob.layer());
            let origin = blob.layer().origin();
            if let (true, Some(written)) = (blob.is_remote(), blob.known()) {
                let digest = written.digest.clone();
                let layer = blob.layer();
                in_flight.push(Box::pin(async move {
                    place_remote(client, repo, &digest, layer)
                        .await
                        .map(|pushed| (i, pushed))
                }));
                written_layers.push(written.clone());
                continue;
            }
            let placed = blocking(|| blob.file(false, cancel))?.ok_or_else(|| {
                crate::image::Error::invalid(blob.layer().description(), "no blob file to push")
            })?;
            stats.compressed_reused += usize::from(placed.reused);
            cancel.check().map_err(crate::image::Error::io(
                "pushing",
                self.reference.to_string(),
            ))?;
            let digest = placed.written.digest.clone();
            let range = placed.range.clone();
            in_flight.push(Box::pin(async move {
                push_blob(client, repo, &digest, Upload::File(range), origin)
                    .await
                    .map(|pushed| (i, pushed))
            }));
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
        Ok(written_layers)
    }
}

/// PUTs a manifest (or an index) as `target` in `reference`'s repository; returns its digest,
/// checked against the one the registry answers.
async fn put_manifest(
    client: &Client<'_>,
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
    let what = format!("putting the manifest for `{reference}`");
    if response.status() != StatusCode::CREATED {
        return Err(client.refused(what, response).await);
    }
    client
        .reporter()
        .manifest_pushed(&format!("{}/{repo}", client.registry()), target);
    if let Some(answered) = header(response.headers(), "docker-content-digest")
        && answered != digest.to_string()
    {
        return Err(client.unexpected(
            what,
            format!("the registry stored the manifest as {answered}, but it is {digest}"),
        ));
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
