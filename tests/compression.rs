//! `--compression`: zstd layers run under podman, plain and gzip:1 layers pass skopeo and
//! oci-image-tool, compressed blobs are remembered per compression and level, and a bad value
//! fails before any work; a cold build's layers are compressed as they are made, not again
//! when they are written.

mod common;

use std::path::Path;

use common::tools::{Podman, Registry, RegistryAuth, tool};
use common::{build, channel, conda_docker, glibc_base, run_ok, tempdir};

/// The manifest of the image named `tag` in the layout at `dir`.
fn manifest(dir: &Path, tag: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let blob = |digest: &serde_json::Value| {
        dir.join("blobs/sha256")
            .join(digest.as_str().unwrap().trim_start_matches("sha256:"))
    };
    serde_json::from_slice(&std::fs::read(blob(&entry["digest"])).unwrap()).unwrap()
}

/// Each layer's media type and digest.
fn layers(manifest: &serde_json::Value) -> Vec<(String, String)> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The diff_ids of the image named `tag` in the layout at `dir`.
fn diff_ids(dir: &Path, tag: &str) -> Vec<String> {
    let out = run_ok(
        conda_docker()
            .args(["inspect", "--json"])
            .arg(format!("oci:{}:{tag}", dir.display())),
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect()
}

fn magic(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()[..4].to_vec()
}

#[test]
fn zstd_layers_run_under_podman() {
    let test = "zstd_layers_run_under_podman";
    let dir = tempdir();
    let layout = dir.path().join("layout");
    let out = build(
        &format!("oci:{}:z", layout.display()),
        "zstd-test:1",
        &["--compression", "zstd"],
        &["bzip2"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Docker before 23"), "no warning: {stderr}");
    let layers = layers(&manifest(&layout, "z"));
    assert!(layers.len() >= 3, "{layers:?}");
    for (media_type, digest) in &layers {
        // The base's uncompressed layer is recompressed too.
        assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
        let blob = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        assert_eq!(magic(&blob), [0x28, 0xb5, 0x2f, 0xfd], "{digest} is zstd");
    }
    if let Some(podman) = Podman::new(test) {
        let got = run_ok(
            podman
                .cmd()
                .args(["run", "--rm", "--network=none"])
                .arg(format!("oci:{}:z", layout.display()))
                .args(["sh", "-c", "echo zstd | bzip2 | bzip2 -d"]),
        );
        assert_eq!(got, "zstd\n");
    }
}

#[test]
fn none_and_gzip_1_pass_skopeo_and_oci_image_tool() {
    let test = "none_and_gzip_1_pass_skopeo_and_oci_image_tool";
    let dir = tempdir();
    // One layout per image: oci-image-tool (1.0.0-rc) cannot pick an image by name in a layout
    // that holds several images with referrers (it says "not unique").
    let layout_of = |tag: &str| dir.path().join(format!("layout-{tag}"));
    for (compression, media_type) in [
        ("none", "application/vnd.oci.image.layer.v1.tar"),
        ("gzip:1", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let tag = compression.replace(':', "-");
        let layout = layout_of(&tag);
        let out = build(
            &format!("oci:{}:{tag}", layout.display()),
            "levels:1",
            &["--compression", compression],
            &["bzip2"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("Docker before 23"), "{stderr}");
        for (got, _) in layers(&manifest(&layout, &tag)) {
            assert_eq!(got, media_type, "{compression}");
        }
        if let Some(mut validate) = tool("oci-image-tool", test) {
            let got = run_ok(
                validate
                    .args(["validate", "--type", "image", "--ref"])
                    .arg(format!("name={tag}"))
                    .arg(&layout),
            );
            assert!(got.contains("Validation succeeded"), "{compression}: {got}");
        }
        if let Some(mut skopeo) = tool("skopeo", test) {
            let source = format!("oci:{}:{tag}", layout.display());
            run_ok(skopeo.args(["inspect", &source]));
            let raw: serde_json::Value = serde_json::from_str(&run_ok(
                std::process::Command::new("skopeo").args(["inspect", "--raw", &source]),
            ))
            .unwrap();
            assert!(
                raw["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|l| l["mediaType"] == media_type),
                "{compression}: {raw}"
            );
            // skopeo checks every blob against its digest as it copies.
            let copied = dir.path().join(format!("copied-{tag}"));
            run_ok(std::process::Command::new("skopeo").args([
                "copy",
                &source,
                &format!("oci:{}:{tag}", copied.display()),
            ]));
        }
    }
    // The same layers in both: other blobs, the same diff_ids.
    assert_eq!(
        diff_ids(&layout_of("none"), "none"),
        diff_ids(&layout_of("gzip-1"), "gzip-1")
    );
}

#[test]
fn each_compression_and_level_has_its_own_cached_blobs() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    let mut seen = Vec::new();
    for compression in ["gzip:6", "gzip:1", "zstd:3", "gzip:6"] {
        let tag = compression.replace(':', "-");
        let mut extra = cache_arg.to_vec();
        extra.extend(["--compression", compression]);
        build(
            &format!("oci:{}:{tag}", layout.display()),
            "cached:1",
            &extra,
            &["bzip2"],
        );
        seen.push(layers(&manifest(&layout, &tag)));
    }
    // A level or an algorithm never gets another's blob; the same one gets the same blobs.
    assert_ne!(seen[0], seen[1], "gzip:1 was served gzip:6 blobs");
    assert_ne!(seen[0], seen[2]);
    assert!(seen[2].iter().all(|(m, _)| m.ends_with("+zstd")));
    assert_eq!(seen[0], seen[3]);
    let remembered: Vec<String> = std::fs::read_dir(cache.join("oci-v1/diff-ids/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for key in ["-gzip-6", "-gzip-1", "-zstdmt-3"] {
        assert!(
            remembered.iter().any(|n| n.ends_with(key)),
            "{key}: {remembered:?}"
        );
    }
}

#[test]
fn copy_recompresses_only_what_differs() {
    let dir = tempdir();
    let zstd = dir.path().join("zstd");
    build(
        &format!("oci:{}:v1", zstd.display()),
        "copied:1",
        &["--compression", "zstd:3"],
        &["bzip2"],
    );
    let source = layers(&manifest(&zstd, "v1"));
    // zstd to zstd: every blob kept as it is.
    let same = dir.path().join("same");
    run_ok(conda_docker().args([
        "copy",
        "--compression",
        "zstd:3",
        &format!("oci:{}:v1", zstd.display()),
        &format!("oci:{}:v1", same.display()),
    ]));
    assert_eq!(layers(&manifest(&same, "v1")), source);
    // zstd to gzip: every layer recompressed, the diff_ids kept.
    let gzip = dir.path().join("gzip");
    run_ok(conda_docker().args([
        "copy",
        "--compression",
        "gzip",
        &format!("oci:{}:v1", zstd.display()),
        &format!("oci:{}:v1", gzip.display()),
    ]));
    assert!(
        layers(&manifest(&gzip, "v1"))
            .iter()
            .all(|(m, _)| m.ends_with("+gzip"))
    );
    assert_eq!(diff_ids(&gzip, "v1"), diff_ids(&zstd, "v1"));
    // A docker-archive holds plain tars whatever --compression says.
    let archive = dir.path().join("image.tar");
    let out = conda_docker()
        .args(["copy", "--compression", "zstd"])
        .arg(format!("oci:{}:v1", zstd.display()))
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Docker before 23"),
        "a docker-archive is not zstd"
    );
    let mut entries = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut checked = 0;
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if !name.starts_with("blobs/sha256/") || entry.size() < 1024 {
            continue;
        }
        let mut head = [0u8; 4];
        std::io::Read::read_exact(&mut entry, &mut head).unwrap();
        assert_ne!(head, [0x28, 0xb5, 0x2f, 0xfd], "{name} is zstd");
        assert_ne!(head[..2], [0x1f, 0x8b], "{name} is gzip");
        checked += 1;
    }
    assert!(checked >= 3, "{checked} layers");
}

#[test]
fn a_bad_compression_fails_before_any_work() {
    let dir = tempdir();
    let out_dir = dir.path().join("never");
    let base = format!("docker-archive:{}", glibc_base().display());
    for (bad, says) in [
        ("lz4", "use `gzip`, `zstd` or `none`"),
        ("gzip:99", "the gzip level must be 1 to 9"),
        ("zstd:0", "the zstd level must be 1 to 22"),
        ("none:3", "`none` takes no level"),
    ] {
        let cache = dir.path().join("cache");
        let out = conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", &cache)
            .args(["build", "-b", &base, "-c"])
            .arg(channel())
            .args(["--compression", bad, "-o"])
            .arg(format!("oci:{}", out_dir.display()))
            .arg("bzip2")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains(&format!("`{bad}`")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(
            !stderr.contains("solving"),
            "{bad}: work was done: {stderr}"
        );
        // Nothing was fetched, read or cached: the refusal came before any work.
        assert!(!cache.exists(), "{bad}: the cache was made");
        let out = conda_docker()
            .args(["copy", "--compression", bad])
            .arg(&base)
            .arg(format!("oci:{}", out_dir.display()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "copy {bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
    assert!(!out_dir.exists(), "nothing was written");
}

#[test]
fn a_zstd_push_runs_under_podman_and_a_gzip_push_keeps_the_base() {
    use common::tools::{Registry, RegistryAuth};
    let test = "a_zstd_push_runs_under_podman_and_a_gzip_push_keeps_the_base";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(mut skopeo) = tool("skopeo", test) else {
        return;
    };
    let reg = &registry.addr;
    // skopeo pushes the base with gzip layers.
    run_ok(
        skopeo
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg(format!("docker://{reg}/base:1")),
    );
    let raw = |image: &str| -> serde_json::Value {
        let out = run_ok(std::process::Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reg}/{image}"),
        ]));
        serde_json::from_str(&out).unwrap()
    };
    let base_layer = raw("base:1")["layers"][0]["digest"].clone();
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let push = |target: &str, compression: &str| {
        let out = conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", &cache)
            .args(["build", "-b", &format!("{reg}/base:1"), "-c"])
            .arg(channel())
            .args(["--compression", compression])
            .args(["-o", &format!("docker://{reg}/{target}"), "bzip2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = push("app:zstd", "zstd");
    assert!(stderr.contains("Docker before 23"), "{stderr}");
    let zstd = raw("app:zstd");
    for layer in zstd["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "the gzip base layer is recompressed too: {zstd}"
        );
    }
    assert_ne!(zstd["layers"][0]["digest"], base_layer);
    push("app:gzip", "gzip");
    let gzip = raw("app:gzip");
    assert_eq!(
        gzip["layers"][0]["digest"], base_layer,
        "the base kept as is"
    );
    assert!(
        gzip["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip")
    );
    if let Some(podman) = Podman::new(test) {
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "--tls-verify=false",
            &format!("{reg}/app:zstd"),
            "sh",
            "-c",
            "echo pushed | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "pushed\n");
    }
}

/// Issue 21: the layers a build makes are compressed as their tar is written into the store,
/// so a cold push compresses only the base's layers (a docker-archive's plain tars) when it
/// writes; before, every layer was compressed in a second pass at the push.
#[test]
fn a_cold_build_compresses_its_layers_as_it_makes_them() {
    let test = "a_cold_build_compresses_its_layers_as_it_makes_them";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    let out = build(
        &format!("docker://{}/cold:1", registry.addr),
        "cold:1",
        &cache_arg,
        &["bzip2"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reused = stderr
        .split(" layers not compressed again")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no push summary: {stderr}"));
    assert!(
        reused >= 1,
        "a cold push compressed every layer again: {stderr}"
    );
    // The package layers' gzip blobs are in the store, remembered by diff_id.
    let remembered = std::fs::read_dir(cache.join("oci-v1/diff-ids/sha256"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with("-gzip-3")
        })
        .count();
    assert!(
        remembered > reused,
        "{remembered} remembered, {reused} reused"
    );
}
