//! What is inside the image: reproducible bytes, no build-machine traces, the layer split, the config.

mod common;

use common::archive::{open, sha256, tar_files};
use common::{build, conda_docker, run_ok, tempdir};

#[test]
fn two_builds_are_byte_identical_and_hold_no_build_machine_paths() {
    let dir = tempdir();
    let a = dir.path().join("a.tar");
    let b = dir.path().join("b.tar");
    for out in [&a, &b] {
        let mut cmd = conda_docker();
        cmd.args(["build", "-b"])
            .arg(format!("docker-archive:{}", common::glibc_base().display()))
            .arg("-c")
            .arg(common::channel())
            .args(["-i", "repro:1", "-o"])
            .arg(out)
            .args(["bzip2", "openssl"]);
        run_ok(&mut cmd);
    }
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "two builds differ"
    );
    let archive = open(&a);
    let cache = common::cache_dir().display().to_string();
    for layer in &archive.layers {
        let raw = &archive.files[layer];
        for needle in [cache.as_bytes(), b"conda-docker-staging".as_slice()] {
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle),
                "layer {layer} contains `{}`",
                String::from_utf8_lossy(needle)
            );
        }
        for name in tar_files(raw).keys() {
            assert!(
                !name.contains("/pkgs/") && !name.ends_with("CACHEDIR.TAG"),
                "{name} in {layer}"
            );
        }
    }
}

#[test]
fn layered_gives_one_layer_per_package_and_single_one_layer() {
    let dir = tempdir();
    let layered = dir.path().join("layered.tar");
    let single = dir.path().join("single.tar");
    build(
        layered.to_str().unwrap(),
        "split:1",
        &["--layering-strategy", "layered"],
        &["bzip2"],
    );
    build(
        single.to_str().unwrap(),
        "split:1",
        &["--layering-strategy", "single"],
        &["bzip2"],
    );

    let base_layers = 1;
    let layered = open(&layered);
    // bzip2, libgcc-ng, libgcc, libgomp, _openmp_mutex, _libgcc_mutex, then unowned files.
    assert_eq!(layered.layers.len(), base_layers + 6 + 1);
    let single = open(&single);
    assert_eq!(single.layers.len(), base_layers + 1);

    for archive in [&layered, &single] {
        let diff_ids: Vec<String> = archive.config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect();
        let actual: Vec<String> = archive
            .layers
            .iter()
            .map(|l| sha256(&archive.files[l]))
            .collect();
        assert_eq!(diff_ids, actual);
        // A non-default setting is recorded in an empty-layer entry (as Docker records CMD).
        let added = archive.config["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["empty_layer"] != true)
            .count();
        assert_eq!(added, archive.layers.len(), "one history entry per layer");
    }
    // Each package layer carries its own conda-meta record.
    let bzip2_layer = tar_files(&layered.files[&layered.layers[6]]);
    assert!(bzip2_layer.contains_key("opt/conda/bin/bzip2"));
    assert!(bzip2_layer.contains_key("opt/conda/conda-meta/bzip2-1.0.8-h4bc722e_7.json"));
}

#[test]
fn layers_are_deterministic_tars_owned_by_root() {
    let dir = tempdir();
    let out = dir.path().join("meta.tar");
    build(out.to_str().unwrap(), "meta:1", &[], &["bzip2"]);
    let archive = open(&out);
    for layer in &archive.layers[1..] {
        let mut tar = tar::Archive::new(archive.files[layer].as_slice());
        let mut names = Vec::new();
        for entry in tar.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
            assert_eq!(h.username().unwrap(), Some(""));
            if h.entry_type().is_dir() {
                assert_eq!(h.mode().unwrap() & 0o777, 0o755, "{:?}", entry.path());
            }
            names.push(entry.path().unwrap().to_path_buf());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "entries of {layer} are not sorted");
    }
}

#[test]
fn base_config_is_kept_and_environment_added() {
    let dir = tempdir();
    let out = dir.path().join("cfg.tar");
    build(
        out.to_str().unwrap(),
        "cfg:1",
        &["--target-prefix", "/env"],
        &["bzip2"],
    );
    let archive = open(&out);
    let config = &archive.config;
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh", "base Cmd kept");
    assert_eq!(
        config["config"]["Labels"]["org.example.base"], "glibc",
        "base labels kept"
    );
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"PATH=/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env:?}"
    );
    assert!(env.contains(&"CONDA_PREFIX=/env"), "{env:?}");
    // Newest package timestamp, since SOURCE_DATE_EPOCH is unset.
    assert_eq!(config["created"], "2024-10-15T21:28:46Z");
}

#[test]
fn source_date_epoch_sets_the_creation_time() {
    let dir = tempdir();
    let out = dir.path().join("sde.tar");
    let mut cmd = conda_docker();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-b", "scratch", "-c"])
        .arg(common::channel())
        .arg("-o")
        .arg(&out)
        .arg("bzip2");
    run_ok(&mut cmd);
    let archive = open(&out);
    assert_eq!(archive.config["created"], "2023-11-14T22:13:20Z");
    let layer = &archive.files[&archive.layers[0]];
    let mut tar = tar::Archive::new(layer.as_slice());
    for entry in tar.entries().unwrap() {
        assert!(entry.unwrap().header().mtime().unwrap() <= 1_700_000_000);
    }
}

#[test]
fn other_platforms_build_for_their_architecture() {
    let dir = tempdir();
    let out = dir.path().join("arm64.tar");
    let aarch64 = common::repo().join("tests/fixtures/channel-aarch64");
    let mut cmd = conda_docker();
    cmd.args([
        "build",
        "--platform",
        "linux-aarch64",
        "-b",
        "scratch",
        "-c",
    ])
    .arg(&aarch64)
    .arg("-o")
    .arg(&out)
    .arg("bzip2");
    run_ok(&mut cmd);
    let archive = open(&out);
    assert_eq!(archive.config["architecture"], "arm64");
    assert_eq!(archive.config["variant"], "v8");
    // The installed program is an aarch64 ELF (e_machine 183).
    let bzip2 = archive
        .layers
        .iter()
        .find_map(|l| tar_files(&archive.files[l]).remove("opt/conda/bin/bzip2"))
        .expect("bzip2 in a layer");
    assert_eq!(&bzip2[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([bzip2[18], bzip2[19]]), 183);

    // An amd64 base cannot carry aarch64 packages.
    let out = conda_docker()
        .args(["build", "--platform", "linux-aarch64", "-b"])
        .arg(format!("docker-archive:{}", common::glibc_base().display()))
        .arg("-c")
        .arg(&aarch64)
        .arg("-o")
        .arg(dir.path().join("mixed.tar"))
        .arg("bzip2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}
