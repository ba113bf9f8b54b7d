//! Provenance of an environment: an in-toto Statement v1 whose predicate is SLSA Provenance v1,
//! saying how the image's environment was made (the builder, the platform, channels and prefix,
//! every package, wheel and the base it was resolved to).
//!
//! Made from what the build resolved alone, like the SBOMs ([`super::sbom`]): no clock, no
//! invocation id, and no path of the build machine beyond what the records hold (a local
//! channel is named by its `file://` URL unless `--channel-name` names it; a `file://` package
//! or wheel URL is left out, its digest kept), so the same build gives the same bytes. Its subject is the
//! environment's package list (`<prefix>/conda-meta/explicit.txt`, whose digest the label
//! [`super::PACKAGES_LABEL`] holds): a statement inside the image cannot name the image's own
//! digest, and as an OCI referrer its manifest's `subject` names the image. The statement is
//! the payload a DSSE envelope signs (`payloadType` [`MEDIA_TYPE`]), as cosign attaches one.

use rattler_conda_types::RepoDataRecord;
use serde_json::{Value, json};

use super::sbom::BaseImage;
use crate::conda::lock::LockedPypi;

/// Where the statement is in the prefix, beside the SBOMs.
pub const FILE: &str = "share/sbom/conda-environment.intoto.json";
/// The media type of an in-toto statement (an OCI referrer's `artifactType`, DSSE's
/// `payloadType`).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The statement's type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate's type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type: what `externalParameters` hold is described in `docs/sbom.md`.
pub const BUILD_TYPE: &str = "https://conda-docker.invalid/provenance/build/v1";
/// The builder's id.
pub const BUILDER_ID: &str = "https://conda-docker.invalid/provenance/builder";

/// What the statement describes: the environment's content alone. The statement is a file of
/// the top layer, so what it holds must not differ where the layers do not: not the specs
/// (the image's own lockfile builds the same image), not the image settings (a config change
/// changes no layer; the history records them) and not how the base was named.
#[derive(Clone, Debug)]
pub struct Build<'a> {
    /// Where the environment lives in the image.
    pub prefix: &'a str,
    /// The environment's package list (the subject).
    pub package_list: &'a str,
    /// The conda platform.
    pub platform: &'a str,
    /// The packages, in dependency order.
    pub records: &'a [RepoDataRecord],
    /// The wheels installed over them.
    pub pypi: &'a [LockedPypi],
    /// The base image, unless `scratch`.
    pub base: Option<&'a BaseImage>,
}

/// A URL worth recording: an http(s) one (a `file://` URL names a path of the build machine).
fn public(url: &url::Url) -> Option<&str> {
    matches!(url.scheme(), "http" | "https").then_some(url.as_str())
}

/// A SLSA ResourceDescriptor of `name` with `sha256`, at `url` when it is public.
fn resource(name: &str, url: Option<&url::Url>, sha256: Option<String>) -> Value {
    let mut r = json!({"name": name});
    if let Some(uri) = url.and_then(public) {
        r["uri"] = json!(uri);
    }
    if let Some(h) = sha256 {
        r["digest"] = json!({"sha256": h});
    }
    r
}

/// The in-toto Statement v1 (SLSA Provenance v1) of `build`, as JSON bytes.
pub fn statement(build: &Build<'_>) -> Vec<u8> {
    let mut channels: Vec<&str> = build
        .records
        .iter()
        .filter_map(|r| r.channel.as_deref())
        .collect();
    channels.sort_unstable();
    channels.dedup();
    let external = json!({
        "platform": build.platform,
        "channels": channels,
        "targetPrefix": build.prefix,
    });
    let mut resolved: Vec<Value> = build
        .records
        .iter()
        .map(|r| {
            resource(
                &r.identifier.to_string(),
                Some(&r.url),
                r.package_record.sha256.map(hex::encode),
            )
        })
        .collect();
    resolved.extend(
        build
            .pypi
            .iter()
            .map(|p| resource(&p.name, Some(&p.url), p.sha256.clone())),
    );
    if let Some(base) = build.base {
        let mut r = resource("base image", None, Some(base.image_id.hex().to_string()));
        r["mediaType"] = json!(crate::image::media_type::OCI_CONFIG);
        resolved.push(r);
    }
    let list = crate::image::Digest::of(build.package_list.as_bytes());
    let document = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": format!("{}/{}", build.prefix.trim_end_matches('/'), super::PACKAGE_LIST),
            "digest": {"sha256": list.hex()},
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"conda-docker": env!("CARGO_PKG_VERSION")},
                },
            },
        },
    });
    let mut bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The statement an image holds in its environment (`$CONDA_PREFIX/` [`FILE`]), if any.
pub fn read_from_image(
    image: &crate::image::Image,
    cancel: &crate::image::Cancel,
) -> crate::image::Result<Option<Vec<u8>>> {
    super::read_prefix_file(image, FILE, cancel)
}
