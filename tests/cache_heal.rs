//! A damaged blob cache heals: a cached layer blob with a flipped byte, cut short, or replaced by
//! a symlink to a host file (a FIFO, which would hang a build that opened it) is dropped with one
//! warning and made again; the build succeeds and its outputs verify (a docker-archive's layers
//! hash to the config's diff_ids; umoci unpacks an `oci:` layout and oci-image-tool validates
//! it; skopeo copies a pushed image); the next build reads a healed cache without a warning.
//! `cache verify` names the damage and `--repair` removes it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::tools::{Registry, RegistryAuth, run_within, tool};
use common::{archive, channel, conda_docker, glibc_base, run_ok, tempdir};

/// Long enough for a cold build on a busy machine; a build that blocks on a FIFO is killed.
const HANG: Duration = Duration::from_secs(300);

/// `conda-docker` with its own cache at `cache`.
fn cd(cache: &Path) -> Command {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache);
    cmd
}

/// Builds bzip2 on the glibc base into `outputs` with the cache at `cache`; must succeed.
/// Returns the image ID and the warnings about damaged blobs.
fn build(cache: &Path, outputs: &[String]) -> (String, Vec<String>) {
    let base = format!("docker-archive:{}", glibc_base().display());
    let mut cmd = cd(cache);
    cmd.args(["build", "-b", &base, "-c"])
        .arg(channel())
        .args(["-i", "heal:1"]);
    for o in outputs {
        cmd.args(["-o", o]);
    }
    let out = run_within(cmd.arg("bzip2"), HANG);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the build failed:\n{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("the cached blob"))
        .map(String::from)
        .collect();
    let id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (id, warnings)
}

/// The blobs the entries of `kind` (`layer-keys`, `diff-ids`) name, by the `field` of each.
fn named_blobs(cache: &Path, kind: &str, field: &str) -> Vec<PathBuf> {
    let blobs = cache.join("oci-v1/blobs/sha256");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("oci-v1").join(kind).join("sha256"))
        .unwrap()
        .map(|e| {
            let entry: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            let digest = entry[field].as_str().unwrap();
            blobs.join(digest.strip_prefix("sha256:").unwrap())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The layer tars the cache keeps under layer keys.
fn layer_tars(cache: &Path) -> Vec<PathBuf> {
    named_blobs(cache, "layer-keys", "diff_id")
}

/// The compressed layers the cache keeps by diff_id.
fn compressed(cache: &Path) -> Vec<PathBuf> {
    named_blobs(cache, "diff-ids", "digest")
}

/// How a blob is damaged.
enum Damage<'a> {
    /// One byte in the middle flipped.
    Flip,
    /// Cut to 17 bytes.
    Truncate,
    /// Replaced with a symlink to this file.
    Link(&'a Path),
}

fn damage(blob: &Path, how: Damage<'_>) {
    match how {
        Damage::Flip => {
            let mut bytes = std::fs::read(blob).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x20;
            std::fs::write(blob, bytes).unwrap();
        }
        Damage::Truncate => {
            let bytes = std::fs::read(blob).unwrap();
            std::fs::write(blob, &bytes[..17]).unwrap();
        }
        Damage::Link(target) => {
            std::fs::remove_file(blob).unwrap();
            std::os::unix::fs::symlink(target, blob).unwrap();
        }
    }
}

/// A FIFO at `path`: a build that opened it for reading would block there.
fn fifo(path: PathBuf) -> PathBuf {
    run_ok(Command::new("mkfifo").arg(&path));
    path
}

/// The three kinds of damage, one blob each; `host` is what the symlink points to.
fn damage_three(blobs: &[PathBuf], host: &Path) {
    assert!(
        blobs.len() >= 3,
        "bzip2 on the base makes several layers: {blobs:?}"
    );
    damage(&blobs[0], Damage::Flip);
    damage(&blobs[1], Damage::Truncate);
    damage(&blobs[2], Damage::Link(host));
}

/// One warning per damaged blob, none repeated.
fn assert_one_warning_each(warnings: &[String], damaged: usize) {
    assert_eq!(warnings.len(), damaged, "{warnings:#?}");
    let mut digests: Vec<&str> = warnings
        .iter()
        .filter_map(|w| w.split_whitespace().find(|t| t.starts_with("sha256:")))
        .collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), damaged, "{warnings:#?}");
}

/// Every layer of the docker-archive at `path` hashes to its diff_id in the config.
fn assert_archive_sound(path: &Path) {
    let image = archive::open(path);
    let diff_ids = image.diff_ids();
    assert_eq!(image.layers.len(), diff_ids.len());
    for (layer, diff_id) in image.layers.iter().zip(&diff_ids) {
        assert_eq!(&archive::sha256(&image.files[layer]), diff_id, "{layer}");
    }
}

/// umoci unpacks the layout's `v1` (checking every blob's digest) and oci-image-tool validates
/// it.
fn assert_layout_sound(layout: &Path, bundle: &Path, test: &str) {
    if let Some(mut umoci) = tool("umoci", test) {
        run_ok(
            umoci
                .args(["unpack", "--image", &format!("{}:v1", layout.display())])
                .arg(bundle),
        );
        assert!(bundle.join("rootfs/opt/conda/bin/bzip2").exists());
    }
    if let Some(mut validate) = tool("oci-image-tool", test) {
        let got = run_ok(
            validate
                .args(["validate", "--type", "image", "--ref", "name=v1"])
                .arg(layout),
        );
        assert!(got.contains("Validation succeeded"), "{got}");
    }
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn a_docker_archive_build_heals_flipped_truncated_and_symlinked_layers() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (id, warnings) = build(&cache, &[path(dir.path().join("cold.tar"))]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let host = fifo(dir.path().join("host-fifo"));
    let host = host.as_path();
    damage_three(&layer_tars(&cache), host);

    let healed = dir.path().join("healed.tar");
    let (again, warnings) = build(&cache, &[path(healed.clone())]);
    assert_one_warning_each(&warnings, 3);
    assert_eq!(again, id, "the same image");
    assert_archive_sound(&healed);
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(
            &std::fs::symlink_metadata(host).unwrap().file_type()
        ),
        "the host file is left alone"
    );

    let (third, warnings) = build(&cache, &[path(dir.path().join("third.tar"))]);
    assert!(warnings.is_empty(), "the cache healed: {warnings:?}");
    assert_eq!(third, id);
}

#[test]
fn an_oci_layout_build_heals_damaged_compressed_layers() {
    let test = "an_oci_layout_build_heals_damaged_compressed_layers";
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let layout = |n: &str| format!("oci:{}:v1", dir.path().join(n).display());
    let (id, _) = build(&cache, &[layout("cold")]);
    let secret = dir.path().join("host-secret");
    std::fs::write(&secret, b"a host file that must not enter an image").unwrap();
    damage_three(&compressed(&cache), &secret);

    let (again, warnings) = build(&cache, &[layout("healed")]);
    assert_one_warning_each(&warnings, 3);
    assert_eq!(again, id);
    assert_layout_sound(&dir.path().join("healed"), &dir.path().join("bundle"), test);

    let (_, warnings) = build(&cache, &[layout("third")]);
    assert!(warnings.is_empty(), "the cache healed: {warnings:?}");
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"a host file that must not enter an image"
    );
}

#[test]
fn every_blob_replaced_heals_in_one_build_of_both_outputs() {
    let test = "every_blob_replaced_heals_in_one_build_of_both_outputs";
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let outputs = |n: &str| {
        [
            path(dir.path().join(format!("{n}.tar"))),
            format!("oci:{}:v1", dir.path().join(n).display()),
        ]
    };
    let (id, _) = build(&cache, &outputs("cold"));
    let every: Vec<PathBuf> = std::fs::read_dir(cache.join("oci-v1/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(every.len() >= 6, "{every:?}");
    for blob in &every {
        damage(blob, Damage::Flip);
    }
    let (again, warnings) = build(&cache, &outputs("healed"));
    assert!(!warnings.is_empty());
    assert_eq!(again, id);
    assert_archive_sound(&dir.path().join("healed.tar"));
    assert_layout_sound(&dir.path().join("healed"), &dir.path().join("bundle"), test);
    let (_, warnings) = build(&cache, &outputs("third"));
    assert!(warnings.is_empty(), "the cache healed: {warnings:?}");
}

#[test]
fn a_push_whose_blob_the_registry_calls_digest_invalid_heals() {
    let test = "a_push_whose_blob_the_registry_calls_digest_invalid_heals";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let dir = tempdir();
    let cache = dir.path().join("cache");
    build(&cache, &[format!("docker://{}/first:1", registry.addr)]);
    // Same size, other bytes: only the registry's hash of the upload can tell.
    for blob in compressed(&cache) {
        damage(&blob, Damage::Flip);
    }
    let (_, warnings) = build(&cache, &[format!("docker://{}/second:1", registry.addr)]);
    assert!(!warnings.is_empty());
    assert!(
        warnings.iter().any(|w| w.contains("DIGEST_INVALID")),
        "{warnings:#?}"
    );
    if let Some(mut skopeo) = tool("skopeo", test) {
        let layout = dir.path().join("copied");
        run_ok(
            skopeo
                .args(["copy", "--src-tls-verify=false"])
                .arg(format!("docker://{}/second:1", registry.addr))
                .arg(format!("oci:{}:v1", layout.display())),
        );
        assert_layout_sound(&layout, &dir.path().join("bundle"), test);
    }
}

/// `cache verify`, with `args`.
fn verify(cache: &Path, args: &[&str]) -> Output {
    run_within(cd(cache).args(["cache", "verify"]).args(args), HANG)
}

#[test]
fn cache_verify_names_the_damage_and_repair_removes_it() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    build(&cache, &[path(dir.path().join("cold.tar"))]);
    let sound = verify(&cache, &[]);
    assert!(sound.status.success(), "{sound:?}");
    assert!(String::from_utf8_lossy(&sound.stdout).contains(" 0 damaged"));

    let host = fifo(dir.path().join("host-fifo"));
    let host = host.as_path();
    let tars = layer_tars(&cache);
    damage_three(&tars, host);
    let found = verify(&cache, &[]);
    let stdout = String::from_utf8_lossy(&found.stdout);
    let stderr = String::from_utf8_lossy(&found.stderr);
    assert!(!found.status.success(), "damage fails verify:\n{stdout}");
    assert!(stderr.contains("--repair"), "{stderr}");
    for tar in &tars[..3] {
        let line = stdout
            .lines()
            .find(|l| l.contains(&*tar.to_string_lossy()))
            .unwrap_or_else(|| panic!("{} is not named:\n{stdout}", tar.display()));
        assert!(line.starts_with("damaged: "), "{line}");
    }
    assert!(stdout.contains("not a regular file"), "{stdout}");
    assert!(stdout.contains("do not match"), "{stdout}");

    let repaired = verify(&cache, &["--repair"]);
    let stdout = String::from_utf8_lossy(&repaired.stdout);
    assert!(repaired.status.success(), "{repaired:?}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("removed: "))
            .count(),
        3
    );
    assert!(
        tars[..3]
            .iter()
            .all(|t| std::fs::symlink_metadata(t).is_err())
    );
    assert!(
        std::fs::symlink_metadata(host).is_ok(),
        "never what a link points to"
    );
    assert!(verify(&cache, &[]).status.success());

    let healed = dir.path().join("healed.tar");
    let (_, warnings) = build(&cache, &[path(healed.clone())]);
    assert!(
        warnings.is_empty(),
        "removed entries are misses: {warnings:?}"
    );
    assert_archive_sound(&healed);
}

/// The manifest digest of the image tagged `tag` in the `oci:` layout `layout`.
fn manifest_digest(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn a_kept_cache_record_is_used_only_when_it_is_the_record() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let out = |tag: &str| format!("oci:{}:{tag}", layout.display());
    build(&cache, &[out("cold")]);
    let kept: Vec<PathBuf> = std::fs::read_dir(cache.join("oci-v1/records/sha256"))
        .expect("the build keeps its cache record")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    build(&cache, &[out("warm")]);
    // Another record's bytes under this key: not used, the record is made again.
    std::fs::write(&kept[0], b"\x1f\x8b not this record").unwrap();
    build(&cache, &[out("tampered")]);
    let cold = manifest_digest(&layout, "cold");
    assert_eq!(
        cold,
        manifest_digest(&layout, "warm"),
        "the warm build's manifest"
    );
    assert_eq!(
        cold,
        manifest_digest(&layout, "tampered"),
        "a tampered kept record was used"
    );
    let healed = std::fs::read(&kept[0]).unwrap();
    assert!(
        healed.starts_with(b"\x1f\x8b\x08"),
        "the kept record was made again"
    );
}
