//! Every image format in and out, with real tools on the other side: what Docker, podman and
//! skopeo write reads back; what we write loads in Docker and podman and passes skopeo, umoci
//! and oci-image-tool; conversions keep every diff_id; malformed inputs are refused.

mod common;

use common::ok;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tools::{Docker, Podman, tool};
use common::{channel, conda_docker, glibc_base, run_ok, tempdir};

fn cd(args: &[&str]) -> std::process::Output {
    conda_docker().args(args).output().unwrap()
}

fn failed(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The diff_ids and config (less diff_ids) of an image, via `conda-docker inspect --json`.
fn diff_ids(image: &str) -> (Vec<String>, serde_json::Value) {
    let report: serde_json::Value =
        serde_json::from_str(&ok(cd(&["inspect", "--json", image]))).unwrap();
    let ids = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect();
    let mut config = report["config"].clone();
    config["rootfs"] = serde_json::Value::Null;
    (ids, config)
}

fn build_bzip2(base: &str, out: &str) {
    ok(conda_docker()
        .args(["build", "-b", base, "-c"])
        .arg(channel())
        .args(["-i", "fmt:1", "-o", out, "bzip2"])
        .output()
        .unwrap());
}

#[test]
fn conversions_keep_every_diff_id_and_the_config() {
    let dir = tempdir();
    let d = dir.path().display();
    let start = format!("{d}/start.tar");
    build_bzip2(
        &format!("docker-archive:{}", glibc_base().display()),
        &start,
    );
    let chain = [
        format!("docker-archive:{start}"),
        format!("oci:{d}/layout:v1"),
        format!("oci-archive:{d}/image.oci.tar:v1"),
        format!("docker-archive:{d}/back.tar"),
    ];
    let reference = diff_ids(&chain[0]);
    for pair in chain.windows(2) {
        ok(cd(&["copy", &pair[0], &pair[1], "-i", "fmt:2"]));
        assert_eq!(diff_ids(&pair[1]), reference, "{} -> {}", pair[0], pair[1]);
    }
    let test = "conversions_keep_every_diff_id_and_the_config";
    if let Some(mut skopeo) = tool("skopeo", test) {
        run_ok(skopeo.args(["inspect", &format!("oci-archive:{d}/image.oci.tar:v1")]));
    }
    if let Some(podman) = Podman::new(test) {
        run_ok(
            podman
                .cmd()
                .args(["load", "-i", &format!("{d}/image.oci.tar")]),
        );
    }
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i", &format!("{d}/back.tar")]));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "fmt:2",
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }
}

#[test]
fn docker_save_output_is_a_base() {
    let test = "docker_save_output_is_a_base";
    let Some(docker) = Docker::get(test) else {
        return;
    };
    let dir = tempdir();
    run_ok(docker.cmd().arg("load").arg("-i").arg(glibc_base()));
    let saved = dir.path().join("saved.tar");
    run_ok(
        docker
            .cmd()
            .args(["save", "-o"])
            .arg(&saved)
            .arg("glibc-base:test"),
    );
    // Docker 20.10 writes the legacy layout: <id>/layer.tar, <id>.json.
    let listing = run_ok(Command::new("tar").arg("tf").arg(&saved));
    assert!(listing.contains("/layer.tar"), "{listing}");
    let out = dir.path().join("on-saved.tar");
    build_bzip2(
        &format!("docker-archive:{}", saved.display()),
        out.to_str().unwrap(),
    );
    run_ok(docker.cmd().arg("load").arg("-i").arg(&out));
    // The image by its ID (the digest of its config), which no other test's `fmt:1` can move.
    let built = common::archive::open(&out);
    let manifest: serde_json::Value =
        serde_json::from_slice(&built.files["manifest.json"]).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap();
    let id = common::archive::sha256(&built.files[config]);
    // Docker's own view: the saved base's layers are the image's first layers, bzip2's on top.
    let layers = |image: &str| -> Vec<String> {
        let json = run_ok(docker.cmd().args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            image,
        ]));
        serde_json::from_str(&json).unwrap()
    };
    let base = layers("glibc-base:test");
    let image = layers(&id);
    assert!(
        image.len() > base.len() && image[..base.len()] == base[..],
        "base {base:?}, image {image:?}"
    );
    let got = run_ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        &id,
        "sh",
        "-c",
        "echo hi | bzip2 | bzip2 -d",
    ]));
    assert_eq!(got, "hi\n");
}

#[test]
fn podman_multi_image_archives_pick_by_name() {
    let test = "podman_multi_image_archives_pick_by_name";
    let Some(podman) = Podman::new(test) else {
        return;
    };
    let dir = tempdir();
    run_ok(podman.cmd().arg("load").arg("-i").arg(glibc_base()));
    let lone = dir.path().join("lone.tar");
    build_bzip2(
        &format!("docker-archive:{}", glibc_base().display()),
        lone.to_str().unwrap(),
    );
    run_ok(podman.cmd().arg("load").arg("-i").arg(&lone));
    let multi = dir.path().join("multi.tar");
    run_ok(podman.cmd().args(["save", "-m", "-o"]).arg(&multi).args([
        "docker.io/library/glibc-base:test",
        "docker.io/library/fmt:1",
    ]));
    let err = failed(cd(&[
        "inspect",
        &format!("docker-archive:{}", multi.display()),
    ]));
    assert!(err.contains("several") && err.contains("fmt:1"), "{err}");
    let report = ok(cd(&[
        "inspect",
        &format!("docker-archive:{}:docker.io/library/fmt:1", multi.display()),
    ]));
    assert!(report.contains("bzip2-1.0.8-h4bc722e_7"), "{report}");
    let report = ok(cd(&[
        "inspect",
        &format!("docker-archive:{}:glibc-base:test", multi.display()),
    ]));
    assert!(!report.contains("bzip2"), "{report}");
}

#[test]
fn skopeo_archives_and_zstd_layouts_are_bases() {
    let test = "skopeo_archives_and_zstd_layouts_are_bases";
    let Some(_) = tool("skopeo", test) else {
        return;
    };
    let dir = tempdir();
    let d = dir.path().display();
    // skopeo's docker-archive (it links duplicate layer files), and an OCI layout with zstd layers.
    run_ok(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", glibc_base().display()),
        &format!("docker-archive:{d}/skopeo.tar:sk:1"),
    ]));
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-compress-format",
        "zstd",
        &format!("docker-archive:{}", glibc_base().display()),
        &format!("oci:{d}/zstd:z"),
    ]));
    let manifest =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", &format!("oci:{d}/zstd:z")]));
    assert!(manifest.contains("tar+zstd"), "{manifest}");
    let base_ids = diff_ids(&format!("docker-archive:{}", glibc_base().display())).0;
    assert_eq!(
        diff_ids(&format!("docker-archive:{d}/skopeo.tar")).0,
        base_ids
    );
    assert_eq!(diff_ids(&format!("oci:{d}/zstd:z")).0, base_ids);

    // Built on the zstd base, written as a docker-archive (plain tars), Docker 20.10 loads it.
    let out = format!("{d}/on-zstd.tar");
    build_bzip2(&format!("oci:{d}/zstd:z"), &out);
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i", &out]));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "fmt:1",
            "sh",
            "-c",
            "echo ok",
        ]));
        assert_eq!(got, "ok\n");
    }
}

#[test]
fn what_we_write_passes_umoci_and_oci_image_tool() {
    let test = "what_we_write_passes_umoci_and_oci_image_tool";
    let dir = tempdir();
    let layout = dir.path().join("layout");
    build_bzip2(
        &format!("docker-archive:{}", glibc_base().display()),
        &format!("oci:{}:v1", layout.display()),
    );
    if let Some(mut umoci) = tool("umoci", test) {
        let bundle = dir.path().join("bundle");
        run_ok(
            umoci
                .args(["unpack", "--image", &format!("{}:v1", layout.display())])
                .arg(&bundle),
        );
        assert!(bundle.join("rootfs/opt/conda/bin/bzip2").exists());
        assert!(
            bundle
                .join("rootfs/lib/x86_64-linux-gnu/libc.so.6")
                .exists()
        );
    }
    if let Some(mut validate) = tool("oci-image-tool", test) {
        run_ok(
            validate
                .args(["validate", "--type", "image", "--ref", "name=v1"])
                .arg(&layout),
        );
    }
}

/// The path of an example binary, built as a program (not as a test harness, which is what
/// `cargo test --all-targets` makes of it) into this test's own target directory and profile.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/formats-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut build = Command::new(cargo);
    // Variables cargo set for this test (not the user's): left in, they would change the
    // fingerprints and rebuild every dependency.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&key.as_ref())
        {
            build.env_remove(key.as_ref());
        }
    }
    run_ok(
        build
            .args([
                "build",
                "--locked",
                "--offline",
                "--example",
                name,
                "--profile",
                profile,
            ])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    profile_dir.join("examples").join(name)
}

#[test]
fn the_seed_examples_run_and_their_images_load() {
    let test = "the_seed_examples_run_and_their_images_load";
    let (build_env, edit) = (example("build_environment"), example("edit_image"));
    let Some(registry) = common::tools::Registry::start(common::tools::RegistryAuth::None, test)
    else {
        return;
    };
    let dir = tempdir();
    let env_tar = dir.path().join("example-image.tar");
    let env = [
        ("CONDA_DOCKER_CACHE_DIR", common::cache_dir().as_os_str()),
        ("XDG_CACHE_HOME", dir.path().as_os_str()),
        ("RATTLER_CACHE_DIR", common::cache_dir().as_os_str()),
    ];
    run_ok(
        Command::new(&build_env)
            .envs(env)
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg(channel())
            .arg(&env_tar)
            .arg("bzip2"),
    );
    // The environment image goes to the registry; the editing example pulls it from there.
    ok(cd(&[
        "copy",
        &format!("docker-archive:{}", env_tar.display()),
        &format!("docker://{}/example-image:123456", registry.addr),
    ]));
    let edited = dir.path().join("example-filter.tar");
    run_ok(
        Command::new(&edit)
            .envs(env)
            .arg(format!("{}/example-image:123456", registry.addr))
            .arg(&edited),
    );
    let report = ok(cd(&[
        "inspect",
        &format!("docker-archive:{}", edited.display()),
    ]));
    assert!(report.contains("env       FOO=BAR"), "{report}");
    assert!(report.contains("bzip2-1.0.8"), "{report}");
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().arg("load").arg("-i").arg(&env_tar));
        assert_eq!(
            run_ok(docker.cmd().args([
                "run",
                "--rm",
                "--network=none",
                "example-image:123456",
                "sh",
                "-c",
                "echo hi | bzip2 | bzip2 -d"
            ])),
            "hi\n"
        );
        run_ok(docker.cmd().arg("load").arg("-i").arg(&edited));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "this-is-a-test",
            "sh",
            "-c",
            "cat /this/is/a/test1; echo; echo $FOO; ls /srv/examples",
        ]));
        assert!(
            got.starts_with("this is test 1\nBAR\n") && got.contains("edit_image.rs"),
            "{got}"
        );
    }
}

/// Writes a docker-archive by hand: `manifest.json` naming `layers`, each a (name, tar) pair.
fn handmade_archive(path: &Path, layers: &[(&str, Vec<u8>)], listed: &[&str]) {
    handmade_archive_with(path, layers, listed, false)
}

/// [`handmade_archive`], with each layer file gzip-compressed when `gzip` is set (as
/// go-containerregistry's tarballs store them).
fn handmade_archive_with(path: &Path, layers: &[(&str, Vec<u8>)], listed: &[&str], gzip: bool) {
    use sha2::Digest;
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, b)| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b))))
        .collect();
    let stored: Vec<(&str, Vec<u8>)> = layers
        .iter()
        .map(|(name, tar)| {
            let bytes = if gzip {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut gz, tar).unwrap();
                gz.finish().unwrap()
            } else {
                tar.clone()
            };
            (*name, bytes)
        })
        .collect();
    let layers = &stored;
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": ["bad:1"], "Layers": listed}]);
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, bytes).unwrap();
    };
    add("config.json", config.to_string().as_bytes());
    add("manifest.json", manifest.to_string().as_bytes());
    for (name, bytes) in layers {
        add(name, bytes);
    }
    builder.finish().unwrap();
}

/// A layer tar with one file entry whose stored name is exactly `name`.
fn layer_with_entry(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut builder = tar::Builder::new(&mut out);
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    builder.append(&h, &b"x\n"[..]).unwrap();
    builder.finish().unwrap();
    drop(builder);
    out
}

#[test]
fn malformed_inputs_are_refused_and_nothing_is_written() {
    let dir = tempdir();
    let out = dir.path().join("out.tar");
    let out_arg = format!("docker-archive:{}", out.display());
    let cases: Vec<(&str, PathBuf, &str)> = {
        let missing = dir.path().join("input-missing.tar");
        handmade_archive(
            &missing,
            &[("a.tar", layer_with_entry("ok"))],
            &["nowhere.tar"],
        );
        let escaping = dir.path().join("input-escaping.tar");
        handmade_archive(
            &escaping,
            &[("a.tar", layer_with_entry("../../etc/evil"))],
            &["a.tar"],
        );
        let absolute = dir.path().join("input-absolute.tar");
        handmade_archive(
            &absolute,
            &[("a.tar", layer_with_entry("/etc/evil"))],
            &["a.tar"],
        );
        let truncated = dir.path().join("input-truncated.tar");
        let bytes = std::fs::read(glibc_base()).unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
        let gzipped = dir.path().join("input-archive.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        std::fs::write(&gzipped, gz.finish().unwrap()).unwrap();
        vec![
            ("gzipped archive", gzipped, "gunzip -k"),
            ("missing", missing, "nowhere.tar"),
            ("escaping", escaping, "../../etc/evil"),
            ("absolute", absolute, "/etc/evil"),
            ("truncated", truncated, "input-truncated.tar"),
        ]
    };
    for (what, input, needle) in cases {
        let err = failed(cd(&[
            "copy",
            &format!("docker-archive:{}", input.display()),
            &out_arg,
        ]));
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!out.exists(), "{what}: output written");
    }

    // An OCI layout whose layer blob no longer matches its digest.
    let layout = dir.path().join("layout");
    build_bzip2(
        &format!("docker-archive:{}", glibc_base().display()),
        &format!("oci:{}:v1", layout.display()),
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(&manifest_digest)).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    // Replace the blob with other valid gzip data of the same size class.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &layer_with_entry("fine")).unwrap();
    std::fs::write(&blob, gz.finish().unwrap()).unwrap();
    let err = failed(cd(&[
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &out_arg,
    ]));
    assert!(err.contains(&layer), "{err}");
    assert!(!out.exists());
}

#[test]
fn gzipped_archive_layers_and_nested_indexes_are_bases() {
    let dir = tempdir();
    let d = dir.path().display();

    // A docker-archive whose layer file is gzip-compressed: read, and its diff_id is the
    // uncompressed tar's.
    let tar = layer_with_entry("etc/hello");
    let gz_archive = dir.path().join("gzipped-layers.tar");
    handmade_archive_with(
        &gz_archive,
        &[("layer.tar.gz", tar.clone())],
        &["layer.tar.gz"],
        true,
    );
    let (ids, _) = diff_ids(&format!("docker-archive:{}", gz_archive.display()));
    use sha2::Digest;
    assert_eq!(
        ids,
        [format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&tar))
        )]
    );
    let plain = format!("{d}/plain.tar");
    ok(cd(&[
        "copy",
        &format!("docker-archive:{}", gz_archive.display()),
        &plain,
    ]));
    assert_eq!(diff_ids(&format!("docker-archive:{plain}")).0, ids);

    // An OCI layout whose tag names an index of per-platform manifests: each platform's build
    // takes its own entry.
    let layout = common::base::write_multi_arch_layout(&dir.path().join("layout"), glibc_base());
    let base = format!("oci:{}:multi", layout.display());
    let glibc_ids = diff_ids(&format!("docker-archive:{}", glibc_base().display())).0;
    let amd64 = format!("{d}/amd64.tar");
    build_bzip2(&base, &amd64);
    assert_eq!(
        diff_ids(&format!("docker-archive:{amd64}")).0[0],
        glibc_ids[0]
    );
    let arm64 = format!("{d}/arm64.tar");
    ok(conda_docker()
        .args(["build", "--platform", "linux-aarch64", "-b", &base, "-c"])
        .arg(common::repo().join("tests/fixtures/channel-aarch64"))
        .args(["-o", &arm64, "bzip2"])
        .output()
        .unwrap());
    let (ids, config) = diff_ids(&format!("docker-archive:{arm64}"));
    assert_eq!(config["architecture"], "arm64", "{config}");
    assert_ne!(ids[0], glibc_ids[0]);
    // The base layer is the arm64 entry's, which holds /etc/arm64.
    let mut files = std::collections::BTreeMap::new();
    for entry in tar::Archive::new(std::fs::File::open(&arm64).unwrap())
        .entries()
        .unwrap()
    {
        let mut entry = entry.unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(entry.path().unwrap().display().to_string(), bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let first = &files[manifest[0]["Layers"][0].as_str().unwrap()];
    let names: Vec<String> = tar::Archive::new(&first[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"etc/arm64".to_string()), "{names:?}");
}
