//! Artifacts of layers: an OCI artifact manifest whose layers are image layers (a layer cache
//! entry), pushed, listed and deleted by tag. The image side decides what the artifact holds;
//! this places its blobs (mounting what another repository of the registry has) and its
//! manifest.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};

use super::body::{InMemory, Upload};
use super::client::scope;
use super::{Push, PushStats, connect, push_blob, put_manifest};
use crate::image::manifest::{Descriptor, Manifest};
use crate::image::referrer::EMPTY_CONFIG;
use crate::image::{Digest, Image, Layer, Platform, Reference, media_type};
use crate::transport::error::Result;
use crate::transport::{Session, WriteContext};

/// An artifact of image layers to push with [`push_artifact`].
pub struct LayerArtifact {
    /// The manifest's `artifactType`.
    pub artifact_type: String,
    /// Small blobs first in its layers (their media type and bytes).
    pub blobs: Vec<(String, Vec<u8>)>,
    /// The image layers after them, each described with its own annotations; a layer with an
    /// origin in the same registry is mounted from there.
    pub layers: Vec<Layer>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Pushes `artifact` to `reference`'s repository under `tag`: its layers' blobs (compressed as
/// the context's encoding says, mounted or found where they can be), its small blobs and the
/// empty config, then its manifest. Returns the manifest's digest.
pub async fn push_artifact(
    artifact: LayerArtifact,
    reference: &Reference,
    tag: &str,
    ctx: &WriteContext<'_>,
) -> Result<Digest> {
    let (client, cache) = connect(reference, &ctx.session)?;
    let repo = reference.repository();
    let mut image = Image::scratch(&Platform::linux("amd64", None));
    for layer in artifact.layers {
        image.push_layer(layer, Default::default());
    }
    let push = Push {
        client: &client,
        reference,
        cache,
        encoding: ctx
            .options
            .encoding(&crate::transport::Location::Registry(reference.clone())),
        cancel: ctx.session.cancel,
        reporter: ctx.session.reporter,
    };
    let resolution = crate::image::resolve::resolve(&image, push.encoding, Some(cache));
    let written = push.layers(&resolution, &mut PushStats::default()).await?;
    let config = Descriptor::of(media_type::OCI_EMPTY, EMPTY_CONFIG);
    let mut layers = Vec::new();
    for (media, bytes) in artifact.blobs {
        let d = Descriptor::of(&media, &bytes);
        push_blob(&client, repo, &d.digest, Upload::Bytes(bytes), None).await?;
        layers.push(d);
    }
    push_blob(
        &client,
        repo,
        &config.digest,
        Upload::Bytes(EMPTY_CONFIG.to_vec()),
        None,
    )
    .await?;
    layers.extend(written.iter().zip(image.layers()).map(|(w, l)| Descriptor {
        media_type: w.compression.oci_media_type().into(),
        digest: w.digest.clone(),
        size: w.size,
        annotations: l.annotations().clone(),
        platform: None,
        artifact_type: None,
    }));
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        config,
        layers,
        annotations: artifact.annotations,
        artifact_type: Some(artifact.artifact_type),
        subject: None,
    };
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    put_manifest(&client, reference, tag, media_type::OCI_MANIFEST, bytes).await
}

/// The tags of `reference`'s repository (all of them, page by page).
pub async fn tags(reference: &Reference, session: &Session<'_>) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Tags {
        tags: Option<Vec<String>>,
    }
    let (client, _) = connect(reference, session)?;
    let repo = reference.repository();
    let scopes = [scope(repo, "pull")];
    let mut sink = InMemory::default();
    let refused = client
        .download(
            &format!("/v2/{repo}/tags/list?n=10000"),
            &scopes,
            None,
            &mut sink,
            &|_| {},
            |r| r,
        )
        .await?;
    if let Some(response) = refused {
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        return Err(client
            .refused(format!("the tags of `{repo}`"), response)
            .await);
    }
    let listed: Tags = serde_json::from_slice(&sink.0)
        .map_err(client.malformed(format!("the tags of `{repo}`")))?;
    Ok(listed.tags.unwrap_or_default())
}

/// Deletes the manifest `digest` from `reference`'s repository (and so every tag naming it).
pub async fn delete_manifest(
    reference: &Reference,
    digest: &Digest,
    session: &Session<'_>,
) -> Result<()> {
    let (client, _) = connect(reference, session)?;
    let repo = reference.repository();
    let scopes = [scope(repo, "pull,push,delete")];
    let path = format!("/v2/{repo}/manifests/{digest}");
    let response = client.send(Method::DELETE, &path, &scopes, |r| r).await?;
    match response.status() {
        s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
        _ => Err(client
            .refused(format!("deleting {digest} from `{repo}`"), response)
            .await),
    }
}
