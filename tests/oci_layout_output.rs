//! The OCI image layout output: validated by oci-image-tool and umoci, run by podman, read by skopeo.

mod common;

use common::tools::{Podman, tool};
use common::{build, run_ok, tempdir};

#[test]
fn oci_layout_is_valid_and_runs_under_podman() {
    let test = "oci_layout_is_valid_and_runs_under_podman";
    let dir = tempdir();
    let layout = dir.path().join("layout");
    let archive = dir.path().join("image.tar");
    // Both outputs from one build.
    let out = build(
        &format!("oci:{}:v1", layout.display()),
        "ocitest:1",
        &["-o", archive.to_str().unwrap()],
        &["bzip2"],
    );
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 2, "one image ID per output");
    assert_eq!(ids[0], ids[1], "both outputs hold the same config");

    if let Some(mut validate) = tool("oci-image-tool", test) {
        let got = run_ok(
            validate
                .args(["validate", "--type", "image", "--ref", "name=v1"])
                .arg(&layout),
        );
        assert!(got.contains("Validation succeeded"), "{got}");
    }
    if let Some(mut umoci) = tool("umoci", test) {
        let got = run_ok(
            umoci
                .arg("stat")
                .arg("--image")
                .arg(format!("{}:v1", layout.display())),
        );
        assert!(
            got.contains("conda-docker: bzip2-1.0.8-h4bc722e_7"),
            "{got}"
        );
    }
    if let Some(skopeo) = tool("skopeo", test) {
        drop(skopeo);
        for source in [
            format!("oci:{}:v1", layout.display()),
            format!("docker-archive:{}", archive.display()),
        ] {
            let got =
                run_ok(std::process::Command::new("skopeo").args(["inspect", "--config", &source]));
            let config: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(
                config["config"]["Env"][1], "CONDA_PREFIX=/opt/conda",
                "{source}"
            );
            let digest = format!("sha256:{}", {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(
                    run_ok(
                        std::process::Command::new("skopeo")
                            .args(["inspect", "--raw", "--config", &source]),
                    )
                    .as_bytes(),
                ))
            });
            assert_eq!(
                digest, ids[0],
                "{source}: config digest is the printed image ID"
            );
        }
    }
    if let Some(podman) = Podman::new(test) {
        let got = run_ok(
            podman
                .cmd()
                .args(["run", "--rm", "--network=none"])
                .arg(format!("oci:{}:v1", layout.display()))
                .args(["sh", "-c", "echo hi | bzip2 | bzip2 -d"]),
        );
        assert_eq!(got, "hi\n");
    }
}

#[test]
fn adding_to_a_layout_keeps_the_other_images() {
    let dir = tempdir();
    let layout = dir.path().join("layout");
    build(
        &format!("oci:{}:one", layout.display()),
        "x:1",
        &[],
        &["bzip2"],
    );
    build(
        &format!("oci:{}:two", layout.display()),
        "x:2",
        &["--layering-strategy", "single"],
        &["bzip2"],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    // The images and nothing else: their SBOM referrers are blobs, not entries.
    assert_eq!(names, ["one", "two"]);
    // The layout reads back through conda-docker as a base.
    let out = dir.path().join("rebased.tar");
    let got = common::conda_docker()
        .args([
            "build",
            "-b",
            &format!("oci:{}:two", layout.display()),
            "-c",
        ])
        .arg(common::channel())
        .arg("-o")
        .arg(&out)
        .arg("zstd")
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
}

#[test]
fn a_rebuilt_layout_reuses_compressed_layers() {
    let dir = tempdir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    build(
        &format!("oci:{}:v1", first.display()),
        "reuse:1",
        &[],
        &["zstd"],
    );
    let remembered = common::cache_dir().join("oci-v1/diff-ids/sha256");
    let count = std::fs::read_dir(&remembered)
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        count >= 5,
        "compressed layers were not remembered in {}",
        remembered.display()
    );
    build(
        &format!("oci:{}:v1", second.display()),
        "reuse:1",
        &[],
        &["zstd"],
    );
    // The same blobs, byte for byte: copied from the cache rather than compressed again.
    let blobs = |d: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(blobs(&first), blobs(&second));
    assert_eq!(
        std::fs::read(first.join("index.json")).unwrap(),
        std::fs::read(second.join("index.json")).unwrap()
    );
}

#[test]
fn an_oci_archive_and_a_layout_share_compressed_layers() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let archive = dir.path().join("image.oci.tar");
    let layout = dir.path().join("layout");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    build(
        &format!("oci-archive:{}:v1", archive.display()),
        "shared:1",
        &cache_arg,
        &["zstd"],
    );
    // The archive's layers were compressed into the blob store...
    let remembered = cache.join("oci-v1/diff-ids/sha256");
    let count = std::fs::read_dir(&remembered)
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(count >= 5, "{} holds {count} layers", remembered.display());
    // ...and a layout written next holds the very same blobs.
    build(
        &format!("oci:{}:v1", layout.display()),
        "shared:1",
        &cache_arg,
        &["zstd"],
    );
    let mut in_archive: Vec<String> = tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .entries()
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path().unwrap().display().to_string();
            path.strip_prefix("blobs/sha256/")
                .filter(|h| !h.is_empty())
                .map(str::to_string)
        })
        .collect();
    in_archive.sort();
    let mut in_layout: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_layout.sort();
    // The layout holds the very same image blobs, and beside them the referrers (which an
    // oci-archive does not carry): the empty config, two SBOMs, the provenance statement, the
    // cache record, and their four manifests.
    assert!(
        in_archive.iter().all(|b| in_layout.contains(b)),
        "{in_archive:?} vs {in_layout:?}"
    );
    assert_eq!(in_layout.len(), in_archive.len() + 9, "{in_layout:?}");
}

/// The conda packages (`name`, `version`) recorded in the image's SBOM, as conda-docker lists them.
fn sbom_packages(location: &str) -> Vec<(String, String)> {
    let out = run_ok(common::conda_docker().args(["sbom", "--format", "spdx", location]));
    let spdx: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut packages: Vec<(String, String)> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"].as_array().is_some_and(|refs| {
                refs.iter().any(|r| {
                    r["referenceLocator"]
                        .as_str()
                        .is_some_and(|l| l.starts_with("pkg:conda/"))
                })
            })
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    packages.sort();
    packages
}

#[test]
fn a_single_image_layout_is_one_image_for_podman_skopeo_and_syft() {
    let test = "a_single_image_layout_is_one_image_for_podman_skopeo_and_syft";
    let dir = tempdir();
    let layout = dir.path().join("layout");
    // With its SBOMs (the default), written without a tag.
    build(
        &format!("oci:{}", layout.display()),
        "single:1",
        &[],
        &["bzip2"],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    let packages = sbom_packages(&format!("oci:{}", layout.display()));
    let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    // bzip2 and what it needs from the demo channel.
    assert_eq!(
        names,
        [
            "_libgcc_mutex",
            "_openmp_mutex",
            "bzip2",
            "libgcc",
            "libgcc-ng",
            "libgomp"
        ]
    );

    if let Some(podman) = Podman::new(test) {
        let got = run_ok(
            podman
                .cmd()
                .args(["run", "--rm", "--network=none"])
                .arg(format!("oci:{}", layout.display()))
                .args(["sh", "-c", "echo hi | bzip2 | bzip2 -d"]),
        );
        assert_eq!(got, "hi\n");
    }
    if let Some(mut skopeo) = tool("skopeo", test) {
        let copy = dir.path().join("copy.tar");
        run_ok(
            skopeo
                .arg("copy")
                .arg(format!("oci:{}", layout.display()))
                .arg(format!("docker-archive:{}:copy:1", copy.display())),
        );
        // The copy is the image: conda-docker reads the same packages from it.
        assert_eq!(
            sbom_packages(&format!("docker-archive:{}", copy.display())),
            packages
        );
    }
    if let Some(found) = common::tools::syft_scan(&format!("oci-dir:{}", layout.display()), test) {
        let mut conda: Vec<(String, String)> = found["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["purl"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("pkg:conda/"))
            })
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_string(),
                    a["version"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        conda.sort();
        conda.dedup();
        assert_eq!(
            conda, packages,
            "syft lists every conda package with its purl"
        );
    }
}
