//! Package layers composed from the package cache and cached by what goes in: warm rebuilds
//! read no package, one changed package changes one layer, clobbers, trimming, the dry run and
//! the cache commands.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::archive::{Archive, open};
use common::{channel, conda_docker, copy_channel, glibc_base, run_ok, tempdir};

/// A one-package channel written by tests/common/conda_package.py.
fn package_channel(
    dest: &Path,
    name: &str,
    version: &str,
    files: &[(&str, &str)],
    depends: &[&str],
) {
    let script = format!(
        "import sys; sys.path.insert(0, {common:?}); import conda_package; \
         conda_package.write_channel({dest:?}, {name:?}, {version:?}, \
         {{k: v.encode() for k, v in {files:?}}}, depends={depends:?})",
        common = common::repo().join("tests/common").display().to_string(),
        dest = dest.display().to_string(),
        files = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
        depends = depends.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    );
    let python = common::tools::require("python3", "package_layers").expect("python3");
    run_ok(Command::new(python).args(["-c", &script]));
}

/// `conda-docker build` on the glibc base with its own cache, channels and extra arguments.
fn build_with(
    cache: &Path,
    channels: &[&Path],
    out: &str,
    extra: &[&str],
    specs: &[&str],
) -> Output {
    let mut cmd = conda_docker();
    cmd.args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("--cache-dir")
        .arg(cache)
        .args(["-i", "layers:test", "-o", out]);
    for c in channels {
        cmd.arg("-c").arg(c);
    }
    cmd.args(extra).args(specs);
    let output = cmd.output().expect("running conda-docker");
    assert!(
        output.status.success(),
        "conda-docker build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The package archives the cache keeps, and any package directory extracted into it.
fn packages(cache: &Path) -> Vec<PathBuf> {
    let list = |dir: PathBuf, dirs: bool| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir() == dirs)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = list(cache.join("pkgs-v1"), false);
    found.extend(list(cache.join("pkgs"), true));
    found
}

#[test]
fn a_warm_rebuild_reads_no_package_file() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    // A copy of the channel, so its archives can be removed after the first build.
    let chan = dir.path().join("channel");
    copy_channel(&chan);
    let a = dir.path().join("a.tar");
    let first = build_with(
        &cache,
        &[&chan],
        a.to_str().unwrap(),
        &[],
        &["bzip2", "openssl"],
    );
    assert!(!packages(&cache).is_empty());

    // No package archive left, in the cache or the channel: a warm build must not need them.
    for p in packages(&cache) {
        std::fs::remove_file(p).unwrap();
    }
    for e in std::fs::read_dir(chan.join("linux-64")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "repodata.json" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let b = dir.path().join("b.tar");
    let second = build_with(
        &cache,
        &[&chan],
        b.to_str().unwrap(),
        &[],
        &["bzip2", "openssl"],
    );
    assert_eq!(stdout(&first), stdout(&second), "the image ID changed");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(packages(&cache).is_empty(), "a package was fetched again");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("0 of "),
        "no layer should be made: {stderr}"
    );
}

/// The package layers (all but the base's and the top one) of an archive, by diff_id.
fn package_diff_ids(archive: &Archive, base_layers: usize) -> Vec<String> {
    let ids = archive.diff_ids();
    ids[base_layers..ids.len() - 1].to_vec()
}

#[test]
fn one_changed_package_changes_one_layer() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let v1 = dir.path().join("tool-1");
    let v2 = dir.path().join("tool-2");
    package_channel(&v1, "tool", "1.0", &[("share/tool/version", "1.0")], &[]);
    package_channel(&v2, "tool", "2.0", &[("share/tool/version", "2.0")], &[]);
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let specs = ["bzip2", "zstd", "openssl", "tool"];
    // Fewer layers than packages, so small packages share name-hashed buckets.
    let shared = ["--max-layers", "8"];
    build_with(
        &cache,
        &[&channel(), &v1],
        a.to_str().unwrap(),
        &shared,
        &specs,
    );
    build_with(
        &cache,
        &[&channel(), &v2],
        b.to_str().unwrap(),
        &shared,
        &specs,
    );
    let (a, b) = (open(&a), open(&b));
    assert!(a.layers.len() <= 8, "{} layers", a.layers.len());
    let (la, lb) = (package_diff_ids(&a, 1), package_diff_ids(&b, 1));
    assert_eq!(la.len(), lb.len());
    let changed: Vec<&String> = lb.iter().filter(|d| !la.contains(d)).collect();
    assert_eq!(
        changed.len(),
        1,
        "exactly one package layer changes: {changed:?}"
    );
    let at = b.diff_ids().iter().position(|d| d == changed[0]).unwrap();
    assert_eq!(b.layer(at)["opt/conda/share/tool/version"], b"2.0");
}

#[test]
fn a_package_is_the_same_blob_in_two_environments() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let layered = ["--layering-strategy", "layered"];
    build_with(
        &cache,
        &[&channel()],
        a.to_str().unwrap(),
        &layered,
        &["bzip2"],
    );
    build_with(
        &cache,
        &[&channel()],
        b.to_str().unwrap(),
        &layered,
        &["zstd", "ncurses"],
    );
    let (a, b) = (open(&a), open(&b));
    let holding = |archive: &Archive, record: &str| -> String {
        let ids = archive.diff_ids();
        (0..archive.layers.len())
            .find(|&i| archive.layer(i).contains_key(record))
            .map(|i| ids[i].clone())
            .expect(record)
    };
    let libgcc = "opt/conda/conda-meta/libgcc-14.2.0-h77fa898_1.json";
    assert_eq!(holding(&a, libgcc), holding(&b, libgcc));
}

#[test]
fn a_clobbered_path_goes_to_the_later_package_with_a_warning() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let (p, q) = (dir.path().join("first"), dir.path().join("second"));
    package_channel(
        &p,
        "first",
        "1.0",
        &[("share/x.txt", "first"), ("share/a.txt", "a")],
        &[],
    );
    package_channel(
        &q,
        "second",
        "1.0",
        &[("share/x.txt", "second")],
        &["first"],
    );
    let out = dir.path().join("out.tar");
    let built = build_with(&cache, &[&p, &q], out.to_str().unwrap(), &[], &["second"]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        stderr.contains("warning:")
            && stderr.contains("first-1.0-0")
            && stderr.contains("second-1.0-0"),
        "{stderr}"
    );
    let archive = open(&out);
    let mut holders = Vec::new();
    for i in 0..archive.layers.len() {
        let layer = archive.layer(i);
        assert!(!layer.keys().any(|k| k.contains("__clobbers__")));
        if let Some(bytes) = layer.get("opt/conda/share/x.txt") {
            holders.push(bytes.clone());
        }
        if let Some(record) = layer.get("opt/conda/conda-meta/first-1.0-0.json") {
            let record: serde_json::Value = serde_json::from_slice(record).unwrap();
            let files: Vec<&str> = record["paths_data"]["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["_path"].as_str().unwrap())
                .collect();
            assert_eq!(files, ["share/a.txt"], "first's record lists what it has");
        }
    }
    assert_eq!(holders, [b"second".to_vec()]);
}

#[test]
fn trimming_drops_static_libraries_by_default_and_docs_on_request() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let chan = dir.path().join("chan");
    package_channel(
        &chan,
        "trimmed",
        "1.0",
        &[
            ("lib/libt.a", &"a".repeat(5000)),
            ("lib/libt.so", "so"),
            ("share/man/man1/t.1", "man"),
            ("include/t.h", "h"),
            ("share/web/app.js.map", "map"),
        ],
        &[],
    );
    let files = |extra: &[&str]| -> (Vec<String>, Vec<String>, String) {
        let out = dir.path().join("out.tar");
        let _ = std::fs::remove_file(&out);
        let built = build_with(&cache, &[&chan], out.to_str().unwrap(), extra, &["trimmed"]);
        let archive = open(&out);
        let mut names = Vec::new();
        let mut listed = Vec::new();
        for i in 0..archive.layers.len() {
            for (name, bytes) in archive.layer(i) {
                if let Some(rel) = name.strip_prefix("opt/conda/")
                    && !rel.is_empty()
                    && !rel.ends_with('/')
                    && !rel.starts_with("conda-meta/")
                    && !rel.starts_with("share/sbom/")
                {
                    // The package's files (not those conda-docker writes itself).
                    names.push(rel.to_string());
                }
                if name == "opt/conda/conda-meta/trimmed-1.0-0.json" {
                    let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    for p in record["paths_data"]["paths"].as_array().unwrap() {
                        listed.push(p["_path"].as_str().unwrap().to_string());
                    }
                }
            }
        }
        names.sort();
        listed.sort();
        (
            names,
            listed,
            String::from_utf8_lossy(&built.stderr).into_owned(),
        )
    };
    let (kept, listed, stderr) = files(&[]);
    assert_eq!(kept, ["include/t.h", "lib/libt.so", "share/man/man1/t.1"]);
    assert_eq!(listed, kept, "the record lists what the image has");
    assert!(
        stderr.contains("5.0 kB trimmed") || stderr.contains("6 kB trimmed"),
        "{stderr}"
    );
    let (kept, _, _) = files(&["--trim", "docs,headers"]);
    assert_eq!(kept, ["lib/libt.so"]);
    let (kept, _, _) = files(&["--no-trim"]);
    assert_eq!(kept.len(), 5, "{kept:?}");
}

#[test]
fn oci_blobs_are_world_readable_under_umask_077() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let script = format!(
        "umask 077 && exec {} build -q -b docker-archive:{} -c {} --cache-dir {} -o oci:{}:v1 bzip2",
        env!("CARGO_BIN_EXE_conda-docker"),
        glibc_base().display(),
        channel().display(),
        cache.display(),
        layout.display()
    );
    run_ok(Command::new("sh").args(["-c", &script]));
    let mut checked = 0;
    for root in [
        layout.join("blobs/sha256"),
        cache.join("oci-v1/blobs/sha256"),
    ] {
        for e in std::fs::read_dir(&root).unwrap() {
            let mode = e.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(
                mode & 0o044,
                0o044,
                "a blob in {} is {mode:o}",
                root.display()
            );
            checked += 1;
        }
    }
    let index = std::fs::metadata(layout.join("index.json")).unwrap();
    assert_eq!(index.permissions().mode() & 0o044, 0o044);
    assert!(checked > 10);
}

#[test]
fn the_dry_run_plans_every_layer_and_names_the_downloads() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let plan = |cache: &Path| -> serde_json::Value {
        let out = run_ok(
            conda_docker()
                .args(["build", "--dry-run", "--json", "-b", "scratch", "-c"])
                .arg(channel())
                .arg("--cache-dir")
                .arg(cache)
                .arg("bzip2"),
        );
        serde_json::from_str(&out).unwrap()
    };
    let before = plan(&cache);
    let groups = before[0]["groups"].as_array().unwrap();
    let mut packages: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["packages"].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    packages.sort();
    assert_eq!(packages.len(), 6, "{packages:?}");
    assert!(packages.contains(&"bzip2-1.0.8-h4bc722e_7"));
    assert!(groups.iter().all(|g| g["bytes"].as_u64().unwrap() > 0));
    assert_eq!(before[0]["downloads"].as_array().unwrap().len(), 6);
    assert!(!cache.join("oci-v1").exists(), "a dry run writes no blob");

    let out = dir.path().join("out.tar");
    build_with(
        &cache,
        &[&channel()],
        out.to_str().unwrap(),
        &[],
        &["bzip2"],
    );
    assert_eq!(plan(&cache)[0]["downloads"].as_array().unwrap().len(), 0);
}

#[test]
fn cache_info_and_prune() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.tar");
    build_with(
        &cache,
        &[&channel()],
        out.to_str().unwrap(),
        &[],
        &["bzip2"],
    );
    let info = |cache: &Path| -> serde_json::Value {
        let text = run_ok(
            conda_docker()
                .args(["cache", "info", "--json", "--cache-dir"])
                .arg(cache),
        );
        serde_json::from_str(&text).unwrap()
    };
    let before = info(&cache);
    assert!(before[0]["entries"].as_u64().unwrap() >= 6, "{before}");
    assert!(before[1]["entries"].as_u64().unwrap() >= 6, "{before}");
    let kept = run_ok(
        conda_docker()
            .args(["cache", "prune", "--older-than", "1", "--cache-dir"])
            .arg(&cache),
    );
    assert!(kept.contains("removed 0 entries"), "{kept}");
    run_ok(
        conda_docker()
            .args(["cache", "prune", "--all", "--cache-dir"])
            .arg(&cache),
    );
    let after = info(&cache);
    assert_eq!(after[0]["entries"], 0);
    assert_eq!(after[1]["entries"], 0);
    // A build after pruning makes everything again, the same.
    let again = dir.path().join("again.tar");
    build_with(
        &cache,
        &[&channel()],
        again.to_str().unwrap(),
        &[],
        &["bzip2"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn two_builds_at_once_share_a_cache() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let spawn = |out: &Path| {
        let mut cmd = conda_docker();
        cmd.args(["build", "-q", "-b"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg("--cache-dir")
            .arg(&cache)
            .arg("-c")
            .arg(channel())
            .arg("-o")
            .arg(out)
            .args(["bzip2", "zstd", "openssl", "ncurses"]);
        cmd.spawn().unwrap()
    };
    let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    let (mut pa, mut pb) = (spawn(&a), spawn(&b));
    assert!(pa.wait().unwrap().success());
    assert!(pb.wait().unwrap().success());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_lockfile_dry_run_needs_no_channel() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let chan = dir.path().join("channel");
    copy_channel(&chan);
    let out = dir.path().join("out.tar");
    let locks = [dir.path().join("lock.yml"), dir.path().join("explicit.txt")];
    for lock in &locks {
        let lock_arg = format!("--lock-output={}", lock.display());
        build_with(
            &cache,
            &[&chan],
            out.to_str().unwrap(),
            &[&lock_arg],
            &["zstd", "bzip2"],
        );
    }
    // The channel is gone, and the cache too: the plan comes from the lockfile alone.
    std::fs::remove_dir_all(&chan).unwrap();
    let fresh = dir.path().join("fresh-cache");
    for lock in &locks {
        let text = run_ok(
            conda_docker()
                .args([
                    "build",
                    "--dry-run",
                    "--json",
                    "-b",
                    "scratch",
                    "--cache-dir",
                ])
                .arg(&fresh)
                .arg("-f")
                .arg(lock),
        );
        let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
        let packages: usize = plan[0]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["packages"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            packages,
            10,
            "{} plans every package: {plan}",
            lock.display()
        );
        assert_eq!(plan[0]["downloads"].as_array().unwrap().len(), 10);
    }
}

#[test]
fn hard_links_and_symlinks_of_a_package_stay_links() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let chan = dir.path().join("chan");
    let script = format!(
        "import sys; sys.path.insert(0, {common:?}); import conda_package; \
         conda_package.write_channel({dest:?}, 'linked', '1.0', {{\
         'lib/liba.so.1': b'\\x7fELF' + b'x' * 1000, \
         'lib/libb.so.1': ('hardlink', 'lib/liba.so.1'), \
         'lib/liba.so': ('link', 'liba.so.1')}})",
        common = common::repo().join("tests/common").display().to_string(),
        dest = chan.display().to_string(),
    );
    let python = common::tools::require("python3", "package_layers").expect("python3");
    run_ok(Command::new(python).args(["-c", &script]));
    let out = dir.path().join("out.tar");
    build_with(&cache, &[&chan], out.to_str().unwrap(), &[], &["linked"]);
    let archive = open(&out);
    let layer = archive
        .layers
        .iter()
        .map(|l| &archive.files[l])
        .find(|bytes| common::archive::tar_files(bytes).contains_key("opt/conda/lib/liba.so.1"))
        .expect("the package's layer");
    let mut kinds = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(layer.as_slice());
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        kinds.insert(name, (entry.header().entry_type(), link, entry.size()));
    }
    let file = &kinds["opt/conda/lib/liba.so.1"];
    assert_eq!((file.0, file.2), (tar::EntryType::Regular, 1004));
    assert_eq!(
        kinds["opt/conda/lib/libb.so.1"],
        (
            tar::EntryType::Link,
            Some("opt/conda/lib/liba.so.1".to_string()),
            0
        )
    );
    assert_eq!(
        kinds["opt/conda/lib/liba.so"],
        (tar::EntryType::Symlink, Some("liba.so.1".to_string()), 0)
    );
}
