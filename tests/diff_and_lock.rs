//! `conda-docker diff` and `conda-docker lock` on real builds from the fixture channel.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use common::{archive, build, conda_docker, tempdir};
use serde_json::{Value, json};

fn cd(args: &[&str]) -> Output {
    conda_docker().args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names of the packages whose `conda-meta` records a docker-archive's layers hold.
fn package_names(path: &Path) -> BTreeSet<String> {
    let image = archive::open(path);
    let mut names = BTreeSet::new();
    for i in 0..image.layers.len() {
        for (name, data) in image.layer(i) {
            if name.contains("/conda-meta/") && name.ends_with(".json") {
                let record: Value = serde_json::from_slice(&data).unwrap();
                names.insert(record["name"].as_str().unwrap().to_string());
            }
        }
    }
    names
}

fn names(packages: &Value) -> BTreeSet<String> {
    packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn diff_ids(layers: &Value) -> Vec<String> {
    layers
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diff_names_added_packages_and_shared_layers() {
    let dir = tempdir();
    let a = dir.path().join("a.tar");
    let b = dir.path().join("b.tar");
    let layout = dir.path().join("layout");
    let (oci_a, oci_b) = (
        format!("oci:{}:a", layout.display()),
        format!("oci:{}:b", layout.display()),
    );
    build(a.to_str().unwrap(), "diff:a", &["-o", &oci_a], &["bzip2"]);
    build(
        b.to_str().unwrap(),
        "diff:b",
        &["-o", &oci_b],
        &["bzip2", "zstd"],
    );
    let (src_a, src_b) = (
        format!("docker-archive:{}", a.display()),
        format!("docker-archive:{}", b.display()),
    );

    let out = cd(&["diff", "--json", &src_a, &src_b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff: Value = serde_json::from_str(&stdout(&out)).unwrap();

    // Packages: what B's records name beyond A's, zstd and its dependencies; nothing else.
    let (in_a, in_b) = (package_names(&a), package_names(&b));
    let added: BTreeSet<String> = in_b.difference(&in_a).cloned().collect();
    assert!(added.contains("zstd") && added.len() > 1, "{added:?}");
    assert_eq!(names(&diff["packages"]["added"]), added);
    assert_eq!(diff["packages"]["removed"], json!([]));
    assert_eq!(diff["packages"]["changed"], json!([]));
    let zstd = diff["packages"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "zstd")
        .unwrap();
    assert_eq!(zstd["prefix"], "/opt/conda");
    assert_eq!(zstd["version"], "1.5.6");

    // Layers: shared and added by the archives' own diff_ids; the bytes to send are B's new
    // layer files (a docker-archive stores layers uncompressed).
    let (arch_a, arch_b) = (archive::open(&a), archive::open(&b));
    let ids_a: BTreeSet<String> = arch_a.diff_ids().into_iter().collect();
    let (shared, new): (Vec<_>, Vec<_>) = arch_b
        .diff_ids()
        .into_iter()
        .enumerate()
        .partition(|(_, d)| ids_a.contains(d));
    assert!(!shared.is_empty() && !new.is_empty());
    let ids = |v: &[(usize, String)]| v.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>();
    assert_eq!(diff_ids(&diff["layers"]["shared"]), ids(&shared));
    assert_eq!(diff_ids(&diff["layers"]["added"]), ids(&new));
    let ids_b: BTreeSet<String> = arch_b.diff_ids().into_iter().collect();
    let gone: Vec<String> = arch_a
        .diff_ids()
        .into_iter()
        .filter(|d| !ids_b.contains(d))
        .collect();
    assert_eq!(diff_ids(&diff["layers"]["removed"]), gone);
    let size = |i: usize| arch_b.files[&arch_b.layers[i]].len() as u64;
    let to_send: u64 = new.iter().map(|(i, _)| size(*i)).sum();
    assert_eq!(diff["layers"]["bytes_to_send"], to_send);
    let total: u64 = (0..arch_b.layers.len()).map(size).sum();
    assert_eq!(diff["layers"]["size"], total);
    assert_eq!(
        diff["layers"]["shared_blobs"], 0,
        "a docker-archive names no blob digests"
    );
    assert_eq!(diff["config"][0]["key"], "org.conda-docker.packages.digest");

    // The same, for people; and the exit status only says "different" when asked.
    let out = cd(&["diff", &src_a, &src_b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\n  + zstd 1.5.6 "), "{text}");
    assert!(
        text.contains(&format!(
            "packages: {} added, 0 removed, 0 changed",
            added.len()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "layers: {} shared (0 by blob digest)",
            shared.len()
        )),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("  - ") && !l.starts_with("  - sha256:")),
        "no package removed: {text}"
    );
    assert_eq!(
        cd(&["diff", "--exit-code", &src_a, &src_b]).status.code(),
        Some(1)
    );
    let same = cd(&["diff", "--exit-code", &src_a, &src_a]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert!(stdout(&same).contains("packages: 0 added, 0 removed, 0 changed"));
    let missing = dir.path().join("missing.tar");
    let err = cd(&[
        "diff",
        "--exit-code",
        &src_a,
        &format!("docker-archive:{}", missing.display()),
    ]);
    assert_eq!(err.status.code(), Some(2), "an error is not a difference");
    assert!(stderr(&err).contains("missing.tar"), "{}", stderr(&err));

    // In OCI layouts the layers are compressed blobs: shared by digest too, and the bytes to
    // send are the manifest's sizes of B's blobs A lacks.
    let out = cd(&["diff", "--json", &oci_a, &oci_b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let in_layouts: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(in_layouts["packages"], diff["packages"]);
    assert_eq!(
        in_layouts["layers"]["shared"].as_array().unwrap().len(),
        shared.len()
    );
    assert_eq!(in_layouts["layers"]["shared_blobs"], shared.len());
    let (blobs_a, blobs_b) = (layout_layers(&layout, "a"), layout_layers(&layout, "b"));
    let digests_a: BTreeSet<&String> = blobs_a.iter().map(|(d, _)| d).collect();
    let to_send: u64 = blobs_b
        .iter()
        .filter(|(d, _)| !digests_a.contains(d))
        .map(|(_, s)| s)
        .sum();
    assert!(to_send > 0);
    assert_eq!(in_layouts["layers"]["bytes_to_send"], to_send);
    let total: u64 = blobs_b.iter().map(|(_, s)| s).sum();
    assert_eq!(in_layouts["layers"]["size"], total);

    // Across transports, B's layers are listed as `inspect` of B reports them (its blob
    // digests and sizes, its history), though the bottom layers both share are read from A.
    let out = cd(&["diff", "--json", &src_a, &oci_b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let across: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let inspected: Value =
        serde_json::from_str(&stdout(&cd(&["inspect", "--json", &oci_b]))).unwrap();
    let mut listed: Vec<Value> = across["layers"]["shared"].as_array().unwrap().clone();
    listed.extend(
        across["layers"]["added"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    assert_eq!(listed.len(), blobs_b.len());
    for layer in inspected["layers"].as_array().unwrap() {
        let got = listed
            .iter()
            .find(|l| l["diff_id"] == layer["diff_id"])
            .unwrap();
        for field in ["digest", "size", "packages", "created_by"] {
            assert_eq!(got[field], layer[field], "{field} of {}", layer["diff_id"]);
        }
    }
    assert_eq!(across["layers"]["shared_blobs"], 0);
    assert_eq!(across["layers"]["bytes_to_send"], to_send);
    assert_eq!(across["packages"], diff["packages"]);
}

/// The (digest, size) of each layer blob of the image tagged `tag` in the OCI layout `dir`.
fn layout_layers(dir: &Path, tag: &str) -> Vec<(String, u64)> {
    let read = |p: &Path| -> Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let index = read(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let hex = entry["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest = read(&dir.join("blobs/sha256").join(hex));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn diff_shows_packages_from_another_channel_as_changed() {
    let dir = tempdir();
    let a = dir.path().join("a.tar");
    let b = dir.path().join("b.tar");
    build(a.to_str().unwrap(), "chan:a", &[], &["bzip2"]);
    let named = format!("conda-forge={}", common::channel().display());
    build(
        b.to_str().unwrap(),
        "chan:b",
        &["--channel-name", &named],
        &["bzip2"],
    );
    let (a, b) = (
        format!("docker-archive:{}", a.display()),
        format!("docker-archive:{}", b.display()),
    );
    let diff: Value = serde_json::from_str(&stdout(&cd(&["diff", "--json", &a, &b]))).unwrap();
    let changed = diff["packages"]["changed"].as_array().unwrap();
    assert!(changed.len() > 1, "{diff}");
    let local = local_channel_url();
    for c in changed {
        assert_eq!(c["old"]["version"], c["new"]["version"]);
        assert_eq!(
            c["old"]["channel"],
            local.as_str(),
            "an unnamed local channel"
        );
        assert_eq!(
            c["new"]["channel"],
            "https://conda.anaconda.org/conda-forge"
        );
    }
    assert_eq!(diff["packages"]["added"], json!([]));
    assert_eq!(diff["packages"]["removed"], json!([]));
    let text = stdout(&cd(&["diff", &a, &b]));
    assert!(
        text.contains(&format!(
            "  ~ bzip2 1.0.8 h4bc722e_7 → 1.0.8 h4bc722e_7 (channel \
                 {local} → https://conda.anaconda.org/conda-forge)"
        )),
        "{text}"
    );
}

#[test]
fn diff_shows_config_changes_between_layouts() {
    let dir = tempdir();
    let a = format!("oci:{}:a", dir.path().join("layout").display());
    let b = format!("oci-archive:{}:b", dir.path().join("b.oci.tar").display());
    build(
        &a,
        "cfg:a",
        &["--env", "A=1", "--label", "team=a"],
        &["bzip2"],
    );
    build(
        &b,
        "cfg:b",
        &["--env", "A=2", "--label", "team=b", "--expose", "8000"],
        &["bzip2"],
    );

    let out = cd(&["diff", "--json", &a, &b]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        diff["config"],
        json!([
            {"field": "env", "key": "A", "old": "1", "new": "2"},
            {"field": "label", "key": "team", "old": "a", "new": "b"},
            {"field": "exposed_port", "old": null, "new": "8000/tcp"},
        ])
    );
    assert_eq!(
        diff["packages"],
        json!({"added": [], "removed": [], "changed": []})
    );
    // The same packages make the same layers, stored as the same blobs in both.
    let shared = diff["layers"]["shared"].as_array().unwrap().len();
    assert!(shared > 1);
    assert_eq!(diff["layers"]["shared_blobs"], shared);
    assert_eq!(diff["layers"]["added"], json!([]));
    assert_eq!(diff["layers"]["bytes_to_send"], 0);

    let text = stdout(&cd(&["diff", &a, &b]));
    for line in [
        "  ~ env A: 1 → 2",
        "  ~ label team: a → b",
        "  + exposed_port 8000/tcp",
        "config: 3 changed",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

/// The channel the fixture channel's records name when no `--channel-name` names it: its own
/// `file://` URL (no trailing `/`, as records hold channels).
fn local_channel_url() -> String {
    let dir = common::channel().canonicalize().unwrap();
    let url = url::Url::from_directory_path(dir).unwrap();
    url.as_str().trim_end_matches('/').to_string()
}

/// `STDOUT` of a build that must succeed, trimmed: the image ID for a docker-archive.
fn image_id(out: &Output) -> String {
    stdout(out).trim().to_string()
}

#[test]
fn lock_of_a_pushed_image_rebuilds_the_same_image() {
    let test = "lock_of_a_pushed_image_rebuilds_the_same_image";
    let Some(registry) = common::tools::Registry::start(common::tools::RegistryAuth::None, test)
    else {
        return;
    };
    let dir = tempdir();
    let d = dir.path();
    let pushed = format!("{}/locked/app:1", registry.addr);
    let original = d.join("original.tar");
    let built_lock = d.join("built.yml");
    let out = build(
        &format!("docker://{pushed}"),
        "locked:1",
        &[
            "-o",
            original.to_str().unwrap(),
            "--lock-output",
            built_lock.to_str().unwrap(),
        ],
        &["bzip2"],
    );
    let printed = stdout(&out);
    let id = printed
        .lines()
        .nth(1)
        .expect("the archive's image ID")
        .trim();
    assert!(id.starts_with("sha256:"), "{printed}");

    // conda-lock and explicit files, read back from the registry.
    for name in ["lock.yml", "explicit.txt"] {
        let lock = d.join(name);
        let out = cd(&["lock", &pushed, "-o", lock.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("from its package list"),
            "{}",
            stderr(&out)
        );
        let text = std::fs::read_to_string(&lock).unwrap();
        assert!(
            text.contains(&format!("{}/linux-64/bzip2-1.0.8-", local_channel_url())),
            "{text}"
        );
        if name == "lock.yml" {
            assert_eq!(
                text,
                std::fs::read_to_string(&built_lock).unwrap(),
                "the lockfile the build wrote"
            );
        }
        let rebuilt = d.join(format!("rebuilt-{name}.tar"));
        let out = build(
            rebuilt.to_str().unwrap(),
            "locked:1",
            &["-f", lock.to_str().unwrap()],
            &[],
        );
        assert_eq!(image_id(&out), id, "rebuilt from {name}");
    }
}

/// Writes `src` without its top layer (the files no package owns, the package list among them)
/// to `dst`, as an image another tool made: records, but no `conda-meta/explicit.txt`.
fn strip_top_layer(src: &Path, dst: &Path) {
    let image = archive::open(src);
    let mut config = image.config.clone();
    let ids = config["rootfs"]["diff_ids"].as_array_mut().unwrap();
    ids.pop();
    let history = config["history"].as_array_mut().unwrap();
    let last = history
        .iter()
        .rposition(|h| h["empty_layer"] != true)
        .unwrap();
    history.remove(last);
    let layers = &image.layers[..image.layers.len() - 1];
    let manifest = json!([{"Config": "config.json", "RepoTags": ["other:1"], "Layers": layers}]);
    let mut tar = tar::Builder::new(std::fs::File::create(dst).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, data).unwrap();
    };
    add("manifest.json", manifest.to_string().as_bytes());
    add("config.json", config.to_string().as_bytes());
    for l in layers {
        add(l, &image.files[l]);
    }
    tar.finish().unwrap();
}

#[test]
fn lock_of_an_image_without_a_package_list_reads_its_records() {
    let dir = tempdir();
    let d = dir.path();
    let original = d.join("original.tar");
    let id = image_id(&build(
        original.to_str().unwrap(),
        "records:1",
        &[],
        &["bzip2"],
    ));
    let other = d.join("other.tar");
    strip_top_layer(&original, &other);
    let source = format!("docker-archive:{}", other.display());
    let listed = cd(&["inspect", "--json", &source]);
    assert!(!stdout(&listed).contains("explicit.txt"));

    let lock = d.join("lock.yml");
    let out = cd(&["lock", &source, "-o", lock.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("from its conda-meta records"),
        "{}",
        stderr(&out)
    );
    let locked: Value = serde_yaml::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let names: BTreeSet<String> = locked["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, package_names(&original));
    let rebuilt = d.join("rebuilt.tar");
    let out = build(
        rebuilt.to_str().unwrap(),
        "records:1",
        &["-f", lock.to_str().unwrap()],
        &[],
    );
    assert_eq!(image_id(&out), id);
}

#[test]
fn lock_refuses_an_image_without_conda_and_a_destination_not_a_file() {
    let dir = tempdir();
    let d = dir.path();
    // The glibc base holds no conda environment: the error names the image.
    let base = format!("docker-archive:{}", common::glibc_base().display());
    let out = cd(&["lock", &base, "-o", d.join("lock.txt").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("`{base}`")), "{err}");
    assert!(err.contains("holds no conda environment"), "{err}");
    assert!(!d.join("lock.txt").exists());

    let image = d.join("app.tar");
    build(image.to_str().unwrap(), "app:1", &[], &["bzip2"]);
    let source = format!("docker-archive:{}", image.display());
    // A directory, and a symlink to a file: refused, and left as they are.
    let directory = d.join("lock.yml");
    std::fs::create_dir(&directory).unwrap();
    let target = d.join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    let link = d.join("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for dest in [&directory, &link] {
        let out = cd(&["lock", &source, "-o", dest.to_str().unwrap()]);
        assert!(!out.status.success(), "{} was written", dest.display());
        let err = stderr(&out);
        assert!(err.contains("is not a regular file"), "{err}");
    }
    // `build --lock-output` refuses them too, before it builds.
    let out = conda_docker()
        .args(["build", "-b", &base, "-c"])
        .arg(common::channel())
        .args(["-o", d.join("never.tar").to_str().unwrap(), "--lock-output"])
        .arg(&link)
        .arg("bzip2")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a regular file"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("never.tar").exists());
    assert!(directory.is_dir());
    assert_eq!(std::fs::read_dir(&directory).unwrap().count(), 0);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    // A regular file is replaced.
    let out = cd(&["lock", &source, "-o", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("@EXPLICIT")
    );
}
