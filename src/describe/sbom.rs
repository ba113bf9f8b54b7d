//! Software bills of materials for an environment: SPDX 2.3 and CycloneDX 1.6 JSON.
//!
//! Made from the image's records alone (see [`crate::conda::record`]), so the documents are as
//! reproducible as the image: the same packages, base and creation time give the same bytes.
//! Every package is listed with its conda package URL
//! (`pkg:conda/NAME@VERSION?build=BUILD&channel=CHANNEL&subdir=SUBDIR`), the PyPI purls its
//! record carries, its sha256 (or md5), its license and what it depends on. A package that
//! installs a Python distribution (its files hold a `*.dist-info` or `*.egg-info`) also gets
//! that distribution as a package of its own, `pkg:pypi/NAME@VERSION` its only purl, which the
//! conda package contains (SPDX `CONTAINS`, CycloneDX `dependsOn`). Scanners match Python
//! advisories by a package's purl and take one purl per package (syft 1.18 reads an SPDX
//! package's first purl only, checked), so a second purl on the conda package would go
//! unread; in CycloneDX a component is matched by its `purl`, so the PyPI identity is a
//! component too (with `evidence.identity` naming the metadata path it was read from).

use std::collections::BTreeMap;

use rattler_conda_types::RepoDataRecord;
use serde_json::{Value, json};

use crate::conda::channel::CHANNEL_ALIAS;
use crate::image::Digest;
use crate::pypi::provides::{Evidence, Provided};

/// Where the SPDX document is in the prefix. Scanners (syft, Trivy) find SBOMs by the suffixes
/// `.spdx.json` and `.cdx.json`. Not in `conda-meta/`: conda, rattler and pixi read every
/// `conda-meta/*.json` as a package record and fail on any other file there.
pub const SPDX_FILE: &str = "share/sbom/conda-environment.spdx.json";
/// Where the CycloneDX document is in the prefix.
pub const CYCLONEDX_FILE: &str = "share/sbom/conda-environment.cdx.json";
/// The label holding the sha256 of the SPDX document.
pub const SBOM_LABEL: &str = "org.conda-docker.sbom.digest";
/// The media type of an SPDX JSON document (an OCI referrer's `artifactType`).
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// The media type of a CycloneDX JSON document.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// The SBOM formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.6 JSON.
    CycloneDx,
}

impl Format {
    /// The file the format is kept in, in the prefix.
    pub fn file(self) -> &'static str {
        match self {
            Format::Spdx => SPDX_FILE,
            Format::CycloneDx => CYCLONEDX_FILE,
        }
    }

    /// The format's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => SPDX_MEDIA_TYPE,
            Format::CycloneDx => CYCLONEDX_MEDIA_TYPE,
        }
    }
}

/// The image an environment was put on, as the SBOM names it: by its content, not by where it
/// was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// Its image ID (config digest), which names its content on any transport.
    pub image_id: Digest,
}

/// The name the SBOMs give the base image.
const BASE_NAME: &str = "base image";

/// What an SBOM describes.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    /// The environment's (or image's) name.
    pub name: &'a str,
    /// The packages, in dependency order.
    pub records: &'a [RepoDataRecord],
    /// The PyPI distributions installed over them.
    pub pypi: &'a [crate::conda::lock::LockedPypi],
    /// The PyPI distributions each package's own files install (`provides[i]` is
    /// `records[i]`'s, see [`crate::pypi::provides::installed`]); empty when unknown.
    pub provides: &'a [Vec<Provided>],
    /// The base image, unless `scratch`.
    pub base: Option<&'a BaseImage>,
    /// The image's creation time, seconds since the epoch.
    pub created: u64,
}

/// A channel as a purl names it: `conda-forge` for `https://conda.anaconda.org/conda-forge`,
/// else its URL.
fn purl_channel(channel: &str) -> String {
    channel
        .strip_prefix(CHANNEL_ALIAS)
        .map(|n| n.trim_end_matches('/').to_string())
        .unwrap_or_else(|| channel.trim_end_matches('/').to_string())
}

/// Percent-encodes a purl component (everything but unreserved characters).
fn purl_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The package URL of a conda package.
pub fn purl(record: &RepoDataRecord) -> String {
    let p = &record.package_record;
    let mut purl = format!(
        "pkg:conda/{}@{}?build={}",
        purl_encode(p.name.as_normalized()),
        purl_encode(&p.version.to_string()),
        purl_encode(p.build.as_str()),
    );
    if let Some(channel) = &record.channel {
        purl.push_str(&format!("&channel={}", purl_encode(&purl_channel(channel))));
    }
    purl.push_str(&format!("&subdir={}", purl_encode(&p.subdir)));
    purl
}

/// The package's license as an SPDX expression, when it is one.
fn spdx_license(license: Option<&str>) -> Option<String> {
    let license = license?.trim();
    spdx::Expression::parse(license)
        .ok()
        .map(|_| license.to_string())
}

/// For each package, the indexes of the packages of the environment it depends on.
fn dependencies(records: &[RepoDataRecord]) -> Vec<Vec<usize>> {
    let by_name: BTreeMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.package_record.name.as_normalized(), i))
        .collect();
    records
        .iter()
        .map(|r| {
            let mut deps: Vec<usize> = r
                .package_record
                .depends
                .iter()
                .filter_map(|d| d.split_whitespace().next())
                .filter_map(|name| by_name.get(name.to_lowercase().as_str()).copied())
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect()
}

/// A UUID made from `bytes` (so the same document gets the same one), in RFC 4122 form.
fn stable_uuid(bytes: &[u8]) -> String {
    let digest = Digest::of(bytes);
    let hex = digest.hex();
    format!(
        "{}-{}-5{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The identity of the packages, as one string, for stable document identifiers.
fn fingerprint(subject: &Subject<'_>) -> String {
    let mut s = format!("{}\n{}\n", subject.name, subject.created);
    if let Some(base) = subject.base {
        s.push_str(&format!("{}\n", base.image_id));
    }
    for r in subject.records {
        s.push_str(&purl(r));
        s.push('\n');
    }
    for p in subject.pypi {
        s.push_str(&pypi_purl(p));
        s.push('\n');
    }
    s
}

/// `pkg:pypi/NAME@VERSION` of a wheel installed from PyPI.
fn pypi_purl(p: &crate::conda::lock::LockedPypi) -> String {
    pypi_purl_of(&p.name, &p.version)
}

/// `pkg:pypi/NAME@VERSION` (the name normalised, as the purl spec asks).
fn pypi_purl_of(name: &str, version: &str) -> String {
    format!(
        "pkg:pypi/{}@{}",
        crate::pypi::normalize_name(name),
        purl_encode(version)
    )
}

/// The metadata path a package's distribution was read from (empty for a record's purl).
fn evidence_path(p: &Provided) -> &str {
    match &p.evidence {
        Evidence::Metadata(path) => path,
        Evidence::Purl => "",
    }
}

/// The distributions `subject`'s package `i` installs.
fn provided_by<'a>(subject: &Subject<'a>, i: usize) -> &'a [Provided] {
    subject.provides.get(i).map_or(&[], Vec::as_slice)
}

/// Where a PyPI distribution was downloaded from, unless a path on the build machine.
fn pypi_location(p: &crate::conda::lock::LockedPypi) -> Option<&str> {
    download_location(&p.url)
}

/// Where a package can be downloaded from, for SPDX: an http(s) URL (a `file://` URL of a
/// local channel or wheel is no download location).
fn download_location(url: &url::Url) -> Option<&str> {
    matches!(url.scheme(), "http" | "https").then_some(url.as_str())
}

fn sha256_hex(record: &RepoDataRecord) -> Option<String> {
    record.package_record.sha256.map(hex::encode)
}

fn md5_hex(record: &RepoDataRecord) -> Option<String> {
    record.package_record.md5.map(hex::encode)
}

/// An SPDX identifier from free text (`SPDXRef-` ids allow letters, digits, `.` and `-`).
fn spdx_id(prefix: &str, i: usize, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{prefix}-{i}-{clean}")
}

/// An SPDX package of the PyPI distribution `name` `version`, its purl its one external
/// reference.
fn spdx_pypi_package(name: &str, id: &str, version: &str, checksums: &[Value]) -> Value {
    json!({
        "name": name,
        "SPDXID": id,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "checksums": checksums,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": pypi_purl_of(name, version),
        }],
    })
}

/// The SPDX 2.3 JSON document of `subject`.
pub fn spdx(subject: &Subject<'_>) -> Vec<u8> {
    let created = crate::image::config::rfc3339(subject.created);
    let ids: Vec<String> = subject
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| spdx_id("Package", i, r.package_record.name.as_normalized()))
        .collect();
    let mut packages = vec![json!({
        "name": subject.name,
        "SPDXID": "SPDXRef-Environment",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Environment",
    })];
    if let Some(base) = subject.base {
        packages.push(json!({
            "name": BASE_NAME,
            "SPDXID": "SPDXRef-BaseImage",
            "versionInfo": base.image_id.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.image_id.hex()}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Environment",
            "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": "SPDXRef-BaseImage",
        }));
    }
    for (r, id) in subject.records.iter().zip(&ids) {
        let p = &r.package_record;
        let mut checksums = Vec::new();
        if let Some(h) = sha256_hex(r) {
            checksums.push(json!({"algorithm": "SHA256", "checksumValue": h}));
        }
        if let Some(h) = md5_hex(r) {
            checksums.push(json!({"algorithm": "MD5", "checksumValue": h}));
        }
        let mut refs = vec![json!({
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl(r),
        })];
        for pypi in p.purls.iter().flatten() {
            refs.push(json!({
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": pypi.to_string(),
            }));
        }
        let mut package = json!({
            "name": p.name.as_normalized(),
            "SPDXID": id,
            "versionInfo": p.version.to_string(),
            "downloadLocation": download_location(&r.url).unwrap_or("NOASSERTION"),
            "filesAnalyzed": false,
            "checksums": checksums,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": spdx_license(p.license.as_deref()).unwrap_or_else(|| "NOASSERTION".into()),
            "copyrightText": "NOASSERTION",
            "externalRefs": refs,
            "comment": format!("conda package {}-{}-{} ({})", p.name.as_normalized(), p.version, p.build, p.subdir),
        });
        if let (Some(license), None) = (&p.license, spdx_license(p.license.as_deref())) {
            package["licenseComments"] = json!(format!("conda records the license as `{license}`"));
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Environment",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut n = 0;
    for (i, id) in ids.iter().enumerate() {
        for d in provided_by(subject, i) {
            let pypi_id = spdx_id("CondaPypi", n, &d.name);
            n += 1;
            let mut package = spdx_pypi_package(&d.name, &pypi_id, &d.version, &[]);
            package["comment"] = json!(format!(
                "PyPI distribution installed by conda package {} (its {})",
                d.package,
                evidence_path(d)
            ));
            packages.push(package);
            relationships.push(json!({
                "spdxElementId": id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": pypi_id,
            }));
        }
    }
    for (i, p) in subject.pypi.iter().enumerate() {
        let id = spdx_id("Pypi", i, &p.name);
        let checksums: Vec<_> = p
            .sha256
            .iter()
            .map(|h| json!({"algorithm": "SHA256", "checksumValue": h}))
            .collect();
        let mut package = spdx_pypi_package(&p.name, &id, &p.version, &checksums);
        if let Some(url) = pypi_location(p) {
            package["downloadLocation"] = json!(url);
        }
        package["comment"] = json!("PyPI distribution, installed from its wheel");
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Environment",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    for (i, deps) in dependencies(subject.records).iter().enumerate() {
        for &d in deps {
            relationships.push(json!({
                "spdxElementId": ids[i],
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": ids[d],
            }));
        }
    }
    let namespace_name: String = subject
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": format!(
            "https://conda-docker.invalid/spdx/{namespace_name}-{}",
            stable_uuid(fingerprint(subject).as_bytes())
        ),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: conda-docker-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    to_bytes(&document)
}

/// The CycloneDX 1.6 JSON document of `subject`.
pub fn cyclonedx(subject: &Subject<'_>) -> Vec<u8> {
    let refs: Vec<String> = subject.records.iter().map(purl).collect();
    let mut components = Vec::new();
    for (r, bom_ref) in subject.records.iter().zip(&refs) {
        let p = &r.package_record;
        let mut hashes = Vec::new();
        if let Some(h) = sha256_hex(r) {
            hashes.push(json!({"alg": "SHA-256", "content": h}));
        }
        if let Some(h) = md5_hex(r) {
            hashes.push(json!({"alg": "MD5", "content": h}));
        }
        let licenses = match (spdx_license(p.license.as_deref()), &p.license) {
            (Some(expression), _) => json!([{"expression": expression}]),
            (None, Some(name)) => json!([{"license": {"name": name}}]),
            (None, None) => json!([]),
        };
        let mut properties = vec![
            json!({"name": "conda:build", "value": p.build}),
            json!({"name": "conda:subdir", "value": p.subdir}),
        ];
        if let Some(channel) = &r.channel {
            properties.push(json!({"name": "conda:channel", "value": channel}));
        }
        for pypi in p.purls.iter().flatten() {
            properties.push(json!({"name": "pypi:purl", "value": pypi.to_string()}));
        }
        components.push(json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name.as_normalized(),
            "version": p.version.to_string(),
            "purl": bom_ref,
            "hashes": hashes,
            "licenses": licenses,
            "externalReferences": [{"type": "distribution", "url": r.url.as_str()}],
            "properties": properties,
        }));
    }
    let mut provided_refs: Vec<Vec<String>> = Vec::new();
    for (i, conda_ref) in refs.iter().enumerate() {
        let mut these = Vec::new();
        for d in provided_by(subject, i) {
            let (bom_ref, purl) = (
                format!("{conda_ref}#pypi/{}", d.name),
                pypi_purl_of(&d.name, &d.version),
            );
            components.push(json!({
                "type": "library",
                "bom-ref": bom_ref,
                "name": d.name,
                "version": d.version,
                "purl": purl,
                "evidence": {"identity": [{
                    "field": "purl",
                    "confidence": 1,
                    "concludedValue": purl,
                    "methods": [{
                        "technique": "manifest-analysis",
                        "confidence": 1,
                        "value": evidence_path(d),
                    }],
                }]},
                "properties": [{"name": "conda:package", "value": d.package}],
            }));
            these.push(bom_ref);
        }
        provided_refs.push(these);
    }
    let mut root_depends: Vec<String> = refs.clone();
    for p in subject.pypi {
        let bom_ref = pypi_purl(p);
        let hashes: Vec<_> = p
            .sha256
            .iter()
            .map(|h| json!({"alg": "SHA-256", "content": h}))
            .collect();
        let mut component = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": p.name,
            "version": p.version,
            "purl": bom_ref,
            "hashes": hashes,
        });
        if let Some(url) = pypi_location(p) {
            component["externalReferences"] = json!([{"type": "distribution", "url": url}]);
        }
        components.push(component);
        root_depends.push(bom_ref);
    }
    if let Some(base) = subject.base {
        components.push(json!({
            "type": "container",
            "bom-ref": "base-image",
            "name": BASE_NAME,
            "version": base.image_id.to_string(),
            "hashes": [{"alg": "SHA-256", "content": base.image_id.hex()}],
        }));
        root_depends.push("base-image".into());
    }
    let mut graph = vec![json!({"ref": "environment", "dependsOn": root_depends})];
    for (i, deps) in dependencies(subject.records).iter().enumerate() {
        let mut depends: Vec<String> = deps.iter().map(|&d| refs[d].clone()).collect();
        depends.extend(provided_refs[i].iter().cloned());
        graph.push(json!({"ref": refs[i], "dependsOn": depends}));
    }
    for these in &provided_refs {
        graph.extend(these.iter().map(|r| json!({"ref": r, "dependsOn": []})));
    }
    let document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", stable_uuid(fingerprint(subject).as_bytes())),
        "version": 1,
        "metadata": {
            "timestamp": crate::image::config::rfc3339(subject.created),
            "tools": {"components": [{
                "type": "application",
                "name": "conda-docker",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {"type": "container", "bom-ref": "environment", "name": subject.name},
        },
        "components": components,
        "dependencies": graph,
    });
    to_bytes(&document)
}

fn to_bytes(document: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Why an image's SBOM could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image's layers could not be read.
    #[error("reading the image's layers")]
    Image(#[from] crate::image::Error),
    /// The image holds no SBOM and no conda environment to make one from.
    #[error(transparent)]
    Environment(#[from] crate::describe::lock::Error),
}

/// The SBOM in `format` an image holds in its environment (`$CONDA_PREFIX/share/sbom/`), if
/// it has one (the top layer that has the file wins).
pub fn read_from_image(
    image: &crate::image::Image,
    format: Format,
    cancel: &crate::image::Cancel,
) -> crate::image::Result<Option<Vec<u8>>> {
    super::read_prefix_file(image, format.file(), cancel)
}

/// The SBOM of any image's conda environment: the one it holds, else one made from its
/// `conda-meta` records (an image another tool built), dated by the image's `created`.
pub fn of_image(
    image: &crate::image::Image,
    format: Format,
    cancel: &crate::image::Cancel,
) -> Result<Vec<u8>, Error> {
    if let Some(bytes) = read_from_image(image, format, cancel)? {
        return Ok(bytes);
    }
    let lock = crate::describe::lock::ImageLock::read(image, None, true, cancel)?;
    let created = image
        .config()
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(0, |t| t.timestamp().max(0) as u64);
    let subject = Subject {
        name: &lock.prefix,
        records: &lock.records,
        pypi: &[],
        provides: &[],
        base: None,
        created,
    };
    Ok(match format {
        Format::Spdx => spdx(&subject),
        Format::CycloneDx => cyclonedx(&subject),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_conda_purl_spec() {
        let record: RepoDataRecord = serde_json::from_value(json!({
            "name": "python-dateutil", "version": "2.9.0.post0", "build": "pyhff2d567_1",
            "build_number": 1, "subdir": "noarch", "depends": [],
            "url": "https://conda.anaconda.org/conda-forge/noarch/python-dateutil-2.9.0.post0-pyhff2d567_1.conda",
            "channel": "https://conda.anaconda.org/conda-forge",
            "fn": "python-dateutil-2.9.0.post0-pyhff2d567_1.conda",
        }))
        .unwrap();
        assert_eq!(
            purl(&record),
            "pkg:conda/python-dateutil@2.9.0.post0?build=pyhff2d567_1&channel=conda-forge&subdir=noarch"
        );
        assert_eq!(
            spdx_license(Some("Apache-2.0 OR BSD-3-Clause")).as_deref(),
            Some("Apache-2.0 OR BSD-3-Clause")
        );
        assert_eq!(spdx_license(Some("BSD")), None);
    }
}
