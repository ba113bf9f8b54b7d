//! Every image carries SBOMs of its environment (SPDX 2.3 and CycloneDX 1.6) that validate with
//! the reference tools, list every package with its purl and sha256, and are found by `sbom`.

mod common;

use std::path::Path;
use std::process::Command;

use common::archive::sha256;
use common::{channel, conda_docker, glibc_base, run_ok, tempdir};

/// Python with spdx-tools and cyclonedx-python-lib, or None (a failure in CI).
fn validators(test: &str) -> Option<std::path::PathBuf> {
    common::tools::python_with(
        "spdx_tools, cyclonedx.validation.json",
        "pip install spdx-tools 'cyclonedx-python-lib[json-validation]'",
        test,
    )
}

/// Validates both documents with the reference tools; panics with their findings.
fn validate(python: &Path, spdx: &Path, cdx: &Path) {
    let script = "import sys\n\
        from spdx_tools.spdx.parser.parse_anything import parse_file\n\
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document\n\
        msgs = validate_full_spdx_document(parse_file(sys.argv[1]))\n\
        assert not msgs, [m.validation_message for m in msgs]\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[2]).read())\n\
        assert err is None, err\n";
    run_ok(Command::new(python).args(["-c", script]).arg(spdx).arg(cdx));
}

fn build(dir: &Path, output: &str, extra: &[&str]) -> String {
    run_ok(
        conda_docker()
            .current_dir(dir)
            .args(["build", "-b"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg("-c")
            .arg(channel())
            .args(["-i", "sbom:test", "-o", output])
            .args(extra),
    )
    .trim()
    .to_string()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("an SBOM is JSON")
}

#[test]
fn every_image_has_valid_sboms_listing_every_package() {
    let test = "every_image_has_valid_sboms_listing_every_package";
    let Some(python) = validators(test) else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let layout = d.join("layout");
    let named = format!("conda-forge={}", channel().display());
    build(
        d,
        &format!("oci:{}:v1", layout.display()),
        &[
            "--channel-name",
            &named,
            "--sbom-dir",
            "sboms",
            "bzip2",
            "zstd",
        ],
    );
    let spdx_file = d.join("sboms/sbom.spdx.json");
    let cdx_file = d.join("sboms/sbom.cdx.json");
    validate(&python, &spdx_file, &cdx_file);

    // Every package of the environment, with its purl and sha256.
    let source = format!("oci:{}:v1", layout.display());
    let explicit = run_ok(conda_docker().args(["inspect", "--json", &source]));
    let report: serde_json::Value = serde_json::from_str(&explicit).unwrap();
    let packages: Vec<String> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["packages"].as_array().unwrap().clone())
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(packages.len() >= 7, "{packages:?}");
    let spdx = json(&std::fs::read(&spdx_file).unwrap());
    let cdx = json(&std::fs::read(&cdx_file).unwrap());
    for dist in &packages {
        let (rest, build) = dist.rsplit_once('-').unwrap();
        let (name, version) = rest.rsplit_once('-').unwrap();
        let purl = format!("pkg:conda/{name}@{version}?build={build}&channel=conda-forge&subdir=");
        let package = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name && p["versionInfo"] == version)
            .unwrap_or_else(|| panic!("{dist} is not in the SPDX document"));
        let locator = package["externalRefs"][0]["referenceLocator"]
            .as_str()
            .unwrap();
        assert!(locator.starts_with(&purl), "{locator} for {dist}");
        assert_eq!(package["checksums"][0]["algorithm"], "SHA256", "{dist}");
        assert_eq!(
            package["checksums"][0]["checksumValue"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
        let component = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purl"].as_str() == Some(locator))
            .unwrap_or_else(|| panic!("{dist} is not in the CycloneDX document"));
        assert_eq!(component["hashes"][0]["alg"], "SHA-256");
        assert_eq!(
            component["hashes"][0]["content"],
            package["checksums"][0]["checksumValue"]
        );
    }
    // Dependencies: zstd depends on libzlib, both in the environment.
    let id_of = |name: &str| {
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["SPDXID"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (zstd, zlib) = (id_of("zstd"), id_of("libzlib"));
    assert!(
        spdx["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["spdxElementId"] == zstd.as_str()
                && r["relationshipType"] == "DEPENDS_ON"
                && r["relatedSpdxElement"] == zlib.as_str()),
        "zstd DEPENDS_ON libzlib is missing"
    );
    // The base image, by its image ID; the creation time is the image's.
    assert!(
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["SPDXID"] == "SPDXRef-BaseImage")
    );

    // In the image, the same bytes; found by `sbom`; named by the label; annotated.
    let printed = conda_docker().args(["sbom", &source]).output().unwrap();
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert_eq!(printed.stdout, std::fs::read(&spdx_file).unwrap());
    let printed = conda_docker()
        .args(["sbom", "--format", "cyclonedx", &source])
        .output()
        .unwrap();
    assert_eq!(printed.stdout, std::fs::read(&cdx_file).unwrap());
    let config = &report["config"];
    assert_eq!(
        config["config"]["Labels"]["org.conda-docker.sbom.digest"],
        sha256(&std::fs::read(&spdx_file).unwrap()).as_str()
    );
    assert_eq!(config["created"], spdx["creationInfo"]["created"]);
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest =
        json(&std::fs::read(layout.join("blobs/sha256").join(&manifest_digest[7..])).unwrap());
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.created"],
        config["created"]
    );

    // Two builds, two identical documents.
    build(
        d,
        "docker-archive:again.tar",
        &[
            "--channel-name",
            &named,
            "--sbom-dir",
            "again",
            "bzip2",
            "zstd",
        ],
    );
    assert_eq!(
        std::fs::read(d.join("again/sbom.spdx.json")).unwrap(),
        std::fs::read(&spdx_file).unwrap()
    );
}

#[test]
fn no_sbom_leaves_none_and_sbom_makes_one_from_the_records() {
    let dir = tempdir();
    let d = dir.path();
    build(d, "docker-archive:plain.tar", &["--no-sbom", "bzip2"]);
    let source = format!("docker-archive:{}", d.join("plain.tar").display());
    let report = run_ok(conda_docker().args(["inspect", "--json", &source]));
    assert!(!report.contains("org.conda-docker.sbom.digest"), "{report}");
    let listing = run_ok(Command::new("tar").arg("-tf").arg(d.join("plain.tar")));
    assert!(!listing.contains("sbom"), "{listing}");
    // An image without SBOMs (as another tool makes them) gets one from its conda-meta records.
    let made = conda_docker().args(["sbom", &source]).output().unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let spdx = json(&made.stdout);
    assert!(
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "bzip2"),
        "{spdx}"
    );
    if let Some(python) = validators("no_sbom_leaves_none_and_sbom_makes_one_from_the_records") {
        std::fs::write(d.join("made.spdx.json"), &made.stdout).unwrap();
        let cdx = conda_docker()
            .args(["sbom", "--format", "cyclonedx", &source])
            .output()
            .unwrap();
        std::fs::write(d.join("made.cdx.json"), &cdx.stdout).unwrap();
        validate(&python, &d.join("made.spdx.json"), &d.join("made.cdx.json"));
    }
    // An image with no conda environment at all: a clear error naming it.
    let base = format!("docker-archive:{}", glibc_base().display());
    let out = conda_docker().args(["sbom", &base]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("base.tar") && err.contains("no conda environment"),
        "{err}"
    );
}

/// GETs `url` with `accept`, as JSON.
fn get_json(url: &str, accept: &str) -> serde_json::Value {
    let body = run_ok(Command::new("curl").args(["-sf", "-H", &format!("Accept: {accept}"), url]));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

#[test]
fn the_sboms_are_attached_as_referrers_in_registries_and_layouts() {
    let test = "the_sboms_are_attached_as_referrers_in_registries_and_layouts";
    let Some(registry) = common::tools::Registry::start(common::tools::RegistryAuth::None, test)
    else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let pushed = build(
        d,
        &format!("docker://{}/app:1", registry.addr),
        &["--sbom-dir", "sboms", "bzip2"],
    );
    let manifest_digest = pushed.rsplit_once('@').expect("REF@DIGEST").1.to_string();
    let spdx = std::fs::read(d.join("sboms/sbom.spdx.json")).unwrap();
    let cdx = std::fs::read(d.join("sboms/sbom.cdx.json")).unwrap();
    let provenance = std::fs::read(d.join("sboms/provenance.intoto.json")).unwrap();
    assert_eq!(
        run_ok(conda_docker().args(["provenance", "--insecure", pushed.as_str()])).as_bytes(),
        provenance,
        "`provenance` prints the statement the pushed image holds"
    );

    // distribution 2.8 has no referrers API: the spec's tag fallback lists them.
    let tag = format!("sha256-{}", &manifest_digest[7..]);
    let index = get_json(
        &registry.url(&format!("/v2/app/manifests/{tag}")),
        "application/vnd.oci.image.index.v1+json",
    );
    let entries = index["manifests"].as_array().unwrap();
    let mut types: Vec<&str> = entries
        .iter()
        .map(|e| e["artifactType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.conda-docker.cache.record.v1+json+gzip",
            "application/vnd.cyclonedx+json",
            "application/vnd.in-toto+json"
        ]
    );
    for entry in entries {
        let artifact = get_json(
            &registry.url(&format!(
                "/v2/app/manifests/{}",
                entry["digest"].as_str().unwrap()
            )),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(artifact["subject"]["digest"], manifest_digest.as_str());
        let blob = artifact["layers"][0]["digest"].as_str().unwrap();
        let bytes = Command::new("curl")
            .args(["-sf", &registry.url(&format!("/v2/app/blobs/{blob}"))])
            .output()
            .unwrap()
            .stdout;
        let want = match entry["artifactType"].as_str().unwrap() {
            "application/spdx+json" => &spdx,
            "application/vnd.cyclonedx+json" => &cdx,
            "application/vnd.in-toto+json" => &provenance,
            // The cache record (docs/caches.md): the one the image's manifest names.
            _ => {
                let image = get_json(
                    &registry.url(&format!("/v2/app/manifests/{manifest_digest}")),
                    "application/vnd.oci.image.manifest.v1+json",
                );
                assert_eq!(
                    image["annotations"]["org.conda-docker.cache.record"].as_str(),
                    Some(blob),
                    "the image names its cache record"
                );
                continue;
            }
        };
        assert_eq!(&bytes, want, "the referrer holds the document");
    }
    // skopeo sees the image and the fallback tag.
    if let Some(skopeo) = common::tools::tool("skopeo", test) {
        let mut skopeo = skopeo;
        let tags = run_ok(
            skopeo
                .args(["list-tags", "--tls-verify=false"])
                .arg(format!("docker://{}/app", registry.addr)),
        );
        assert!(tags.contains(&tag), "{tags}");
    }
    // A second push of the same image keeps one entry per document.
    build(d, &format!("docker://{}/app:1", registry.addr), &["bzip2"]);
    let index = get_json(
        &registry.url(&format!("/v2/app/manifests/{tag}")),
        "application/vnd.oci.image.index.v1+json",
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4);

    // In an OCI layout, as blobs only: index.json lists the image alone (podman, skopeo and syft
    // take each entry for an image), and the artifact manifests name it as their subject.
    let layout = d.join("layout");
    build(d, &format!("oci:{}:v1", layout.display()), &["bzip2"]);
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    let image = &entries[0];
    let mut types = Vec::new();
    for blob in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(blob.unwrap().path()).unwrap();
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if manifest["subject"]["digest"] == image["digest"] {
            let sbom = manifest["layers"][0]["digest"].as_str().unwrap();
            assert!(layout.join("blobs/sha256").join(&sbom[7..]).exists());
            types.push(manifest["artifactType"].as_str().unwrap().to_string());
        }
    }
    types.sort();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.conda-docker.cache.record.v1+json+gzip",
            "application/vnd.cyclonedx+json",
            "application/vnd.in-toto+json"
        ]
    );
    // The layout still reads as one image, with or without its tag.
    run_ok(conda_docker().args(["inspect", &format!("oci:{}:v1", layout.display())]));
    run_ok(conda_docker().args(["inspect", &format!("oci:{}", layout.display())]));
}

/// The first SPDX package, CycloneDX component or syft artifact whose purl is `purl`.
fn with_purl<'a>(items: &'a serde_json::Value, purl: &str) -> Option<&'a serde_json::Value> {
    items.as_array()?.iter().find(|p| {
        p["purl"] == purl
            || p["externalRefs"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["referenceLocator"] == purl))
    })
}

#[test]
fn conda_packages_that_install_python_distributions_list_them_by_pypi_purl() {
    let test = "conda_packages_that_install_python_distributions_list_them_by_pypi_purl";
    let Some(python) = validators(test) else {
        return;
    };
    let dir = tempdir();
    let (python_channel, _) = common::host_python_channel(dir.path());
    let base = format!("docker-archive:{}", glibc_base().display());
    // The host's python, locked; then the fixture channel's noarch requests, urllib3 and idna,
    // as a lockfile lists them (urllib3's own dependencies are not in the fixture channel, so
    // no solve could give this environment).
    let lock = dir.path().join("lock.txt");
    run_ok(
        conda_docker()
            .args(["build", "-q", "-b", &base, "-c"])
            .arg(&python_channel)
            .arg("-o")
            .arg(dir.path().join("python.tar"))
            .arg("--lock-output")
            .arg(&lock)
            .arg("python"),
    );
    let noarch = common::repo().join("tests/fixtures/channel-noarch/noarch");
    let repodata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(noarch.join("repodata.json")).unwrap()).unwrap();
    let mut text = std::fs::read_to_string(&lock).unwrap();
    for file in [
        "idna-3.10-pyhd8ed1ab_1.conda",
        "requests-2.32.3-pyhd8ed1ab_1.conda",
        "urllib3-2.3.0-pyhd8ed1ab_0.conda",
    ] {
        let sha = repodata["packages.conda"][file]["sha256"].as_str().unwrap();
        text.push_str(&format!(
            "file://{}/{file}#sha256:{sha}\n",
            noarch.display()
        ));
    }
    std::fs::write(&lock, text).unwrap();
    let out = dir.path().join("py.tar");
    let sboms = dir.path().join("sboms");
    run_ok(
        conda_docker()
            .args(["build", "-q", "-b", &base, "-f"])
            .arg(&lock)
            .arg("-o")
            .arg(&out)
            .arg("--sbom-dir")
            .arg(&sboms),
    );
    let (spdx_file, cdx_file) = (sboms.join("sbom.spdx.json"), sboms.join("sbom.cdx.json"));
    validate(&python, &spdx_file, &cdx_file);
    let spdx = json(&std::fs::read(&spdx_file).unwrap());
    let cdx = json(&std::fs::read(&cdx_file).unwrap());
    for (name, version) in [
        ("requests", "2.32.3"),
        ("urllib3", "2.3.0"),
        ("idna", "3.10"),
    ] {
        let purl = format!("pkg:pypi/{name}@{version}");
        let package =
            with_purl(&spdx["packages"], &purl).unwrap_or_else(|| panic!("no SPDX package {purl}"));
        assert_eq!(
            package["externalRefs"].as_array().unwrap().len(),
            1,
            "{package}"
        );
        let conda = spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name && p["comment"].as_str().unwrap().starts_with("conda"))
            .unwrap();
        assert!(
            spdx["relationships"].as_array().unwrap().iter().any(|r| {
                r["spdxElementId"] == conda["SPDXID"]
                    && r["relationshipType"] == "CONTAINS"
                    && r["relatedSpdxElement"] == package["SPDXID"]
            }),
            "the conda package {name} contains {purl}"
        );
        let component =
            with_purl(&cdx["components"], &purl).unwrap_or_else(|| panic!("no component {purl}"));
        let conda_ref = cdx["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name && c["purl"].as_str().unwrap().starts_with("pkg:conda/"))
            .unwrap()["bom-ref"]
            .clone();
        let edges = cdx["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["ref"] == conda_ref)
            .unwrap();
        assert!(
            edges["dependsOn"]
                .as_array()
                .unwrap()
                .contains(&component["bom-ref"]),
            "{edges}"
        );
    }
    let python_package = with_purl(&spdx["packages"], "pkg:pypi/python");
    assert!(
        python_package.is_none(),
        "nothing is guessed from conda names"
    );

    let Some(found) = common::tools::syft_scan(&format!("docker-archive:{}", out.display()), test)
    else {
        return;
    };
    let from_sbom: Vec<&str> = found["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["foundBy"] == "sbom-cataloger")
        .filter_map(|a| a["purl"].as_str())
        .collect();
    for purl in ["pkg:pypi/requests@2.32.3", "pkg:pypi/urllib3@2.3.0"] {
        assert!(
            from_sbom.contains(&purl),
            "syft reads {purl}: {from_sbom:?}"
        );
    }
}
