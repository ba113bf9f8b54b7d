//! Hostile packages: each is refused (naming the package and the path, without a panic and
//! without output), or built with its hostile part inert. Nothing outside the cache and the
//! output is written, no host secret reaches the image, and the cache still builds a clean
//! image byte-identical to one from a fresh cache.
//!
//! The packages come from tests/common/hostile_packages.py. Every escape they attempt aims into
//! a canary directory inside the test's own temporary directory, never at a real system path.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::{conda_docker, glibc_base, tempdir};

/// What a case's build may do.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Refused: non-zero exit, the package and path named, no panic, no output.
    Refused,
    /// Refused as above, or built with the hostile part inert.
    RefusedOrInert,
}

/// The fixed time of the clean builds, so their archives can be compared byte for byte.
const EPOCH: &str = "1700000000";

/// No build may take longer than this (a hostile package must not hang the builder either).
const TIMEOUT: Duration = Duration::from_secs(300);

fn generator() -> PathBuf {
    common::repo().join("tests/common/hostile_packages.py")
}

/// python3, or `None` (with a message) to skip outside CI.
fn python(test: &str) -> Option<PathBuf> {
    common::tools::require("python3", test)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Runs `cmd` to completion with piped output; a build still running after [`TIMEOUT`] is
/// killed and fails the test as a hang.
fn run(cmd: &mut Command) -> Output {
    common::tools::run_within(cmd, TIMEOUT)
}

/// One file of a snapshot: its kind, mode, modification time and bytes or link target.
#[derive(Debug, PartialEq)]
struct Node {
    kind: &'static str,
    mode: u32,
    mtime: (i64, i64),
    content: Vec<u8>,
}

/// `root` and everything below it (not following symlinks), by path relative to it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let (kind, content) = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ("symlink", target.into_os_string().into_encoded_bytes())
            } else if meta.is_dir() {
                walk(root, &path, out);
                ("dir", Vec::new())
            } else if meta.is_file() {
                ("file", std::fs::read(&path).unwrap())
            } else {
                ("other", Vec::new())
            };
            let node = Node {
                kind,
                mode: meta.mode(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content,
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    // The directory itself: its time changes when anything is made or removed in it.
    let meta = std::fs::symlink_metadata(root).unwrap();
    let node = Node {
        kind: "dir",
        mode: meta.mode(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        content: Vec::new(),
    };
    out.insert(PathBuf::from("."), node);
    out
}

/// What differs between two snapshots.
fn differences(before: &BTreeMap<PathBuf, Node>, after: &BTreeMap<PathBuf, Node>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, node) in before {
        match after.get(path) {
            None => diffs.push(format!("{} disappeared", path.display())),
            Some(n) if n != node && n.kind == "dir" && node.kind == "dir" => diffs.push(format!(
                "{} (a directory, mode {:o} -> {:o}) was modified: an entry made or removed",
                path.display(),
                node.mode,
                n.mode
            )),
            Some(n) if n != node => diffs.push(format!(
                "{} changed: {} {:o} {} bytes -> {} {:o} {} bytes{}",
                path.display(),
                node.kind,
                node.mode,
                node.content.len(),
                n.kind,
                n.mode,
                n.content.len(),
                if n.mtime != node.mtime {
                    " (rewritten)"
                } else {
                    ""
                }
            )),
            _ => {}
        }
    }
    for (path, node) in after {
        if !before.contains_key(path) {
            diffs.push(format!(
                "{} appeared ({}: {:?})",
                path.display(),
                node.kind,
                String::from_utf8_lossy(&node.content[..node.content.len().min(80)])
            ));
        }
    }
    diffs
}

/// The problems a case found, reported together at its end.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }
}

/// The case's directory: the canary (with the host secret), the channel, the cache, the
/// build's `$TMPDIR` and the outputs, all below one temporary directory.
struct Scene {
    dir: tempfile::TempDir,
    marker: String,
}

impl Scene {
    fn new(case: &str) -> Self {
        let dir = tempdir();
        let canary = dir.path().join("canary");
        std::fs::create_dir_all(canary.join("sub")).unwrap();
        std::fs::write(canary.join("keep.txt"), "keep me\n").unwrap();
        std::fs::write(canary.join("sub/nested.txt"), "nested\n").unwrap();
        std::fs::write(canary.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(canary.join("run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("keep.txt", canary.join("keep-link")).unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let marker = format!("HOSTILE-SECRET-{}-{case}-{nanos}", std::process::id());
        let secret = canary.join("secret.json");
        // JSON, so a builder that reads it as activation variables (from env_vars.d or
        // conda-meta/state) puts it in the config.
        let json =
            serde_json::json!({"LEAKED_SECRET": marker, "env_vars": {"LEAKED_SECRET": marker}});
        std::fs::write(&secret, format!("{json}\n")).unwrap();
        std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        Scene { dir, marker }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What is in the case's directory besides what the test made and `allowed` outputs, and
    /// what is in the build's `$TMPDIR` (which must be empty again).
    fn leftovers(&self, allowed: &[&str]) -> Vec<String> {
        let mut left: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !["canary", "input-channel", "cache", "tmp"].contains(&n.as_str()))
            .filter(|n| !allowed.contains(&n.as_str()))
            .collect();
        left.extend(
            std::fs::read_dir(self.path("tmp"))
                .unwrap()
                .map(|e| format!("tmp/{}", e.unwrap().file_name().to_string_lossy())),
        );
        left
    }
}

/// What the generator says about the case it wrote.
struct Written {
    spec: String,
    packages: Vec<String>,
    offending: Vec<String>,
}

fn generate(python: &Path, scene: &Scene, case: &str) -> Written {
    let out = common::run_ok(
        Command::new(python)
            .arg(generator())
            .arg(scene.path("input-channel"))
            .arg(case)
            .arg("--canary")
            .arg(scene.path("canary"))
            .arg("--secret")
            .arg(scene.path("canary/secret.json")),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            v => v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
        }
    };
    Written {
        spec: v["spec"].as_str().unwrap().to_string(),
        packages: strings(&v["packages"]),
        offending: strings(&v["offending"]),
    }
}

/// `conda-docker build` on the glibc base with only `cache` as its cache and `tmp` as `$TMPDIR`.
fn build(channel: &Path, cache: &Path, tmp: &Path, out: &Path, specs: &[&str]) -> Output {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache)
        .env("TMPDIR", tmp)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("-c")
        .arg(channel)
        .arg("--cache-dir")
        .arg(cache)
        .arg("-o")
        .arg(out)
        .args(["-i", "evil:test"])
        .args(specs);
    run(&mut cmd)
}

/// The clean build (`bzip2` from the fixture channel) with a fresh cache, once per run.
fn reference() -> &'static Path {
    static REFERENCE: OnceLock<PathBuf> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempdir().keep();
        common::tools::remove_at_exit(&dir);
        std::fs::create_dir(dir.join("tmp")).unwrap();
        let out = dir.join("clean.tar");
        let o = build(
            &common::channel(),
            &dir.join("cache"),
            &dir.join("tmp"),
            &out,
            &["bzip2"],
        );
        assert!(
            o.status.success(),
            "the reference build failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

/// The members of a tar archive, in order: name, entry type, bytes and link target.
fn tar_members(bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>, Option<PathBuf>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        let link = entry.link_name().unwrap().map(|l| l.into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push((name, kind, data, link));
    }
    members
}

/// The bytes to scan for a marker: a blob as stored, and gunzipped if it is gzip.
fn scannable(blob: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![blob.to_vec()];
    if blob.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut plain)
            .unwrap();
        out.push(plain);
    }
    out
}

/// Names of the members that differ between two docker-archives, to explain a mismatch.
fn archive_diff(a: &[u8], b: &[u8]) -> Vec<String> {
    let index = |bytes| -> BTreeMap<String, String> {
        tar_members(bytes)
            .into_iter()
            .map(|(n, _, d, _)| (n, sha256(&d)))
            .collect()
    };
    let (a, b) = (index(a), index(b));
    let mut diff: Vec<String> = a
        .iter()
        .filter(|(n, h)| b.get(*n) != Some(h))
        .map(|(n, _)| n.clone())
        .collect();
    diff.extend(b.keys().filter(|n| !a.contains_key(*n)).cloned());
    diff
}

/// The image built from a hostile package holds nothing of the host: no marker bytes anywhere,
/// and conda-docker's own conda-meta files are regular files it wrote.
fn check_inert(p: &mut Problems, scene: &Scene, out: &Path) {
    let bytes = std::fs::read(out).unwrap();
    let marker = scene.marker.as_bytes();
    let outer = tar_members(&bytes);
    let leaked = std::iter::once(&bytes)
        .chain(outer.iter().map(|m| &m.2))
        .flat_map(|blob| scannable(blob))
        .any(|data| data.windows(marker.len()).any(|w| w == marker));
    p.check(!leaked, || {
        "the host secret's marker is in the image".into()
    });

    let manifest = &outer.iter().find(|m| m.0 == "manifest.json").unwrap().2;
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    // The top layer's entry for each path wins.
    let mut files = BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let blob = &outer
            .iter()
            .find(|m| m.0 == layer.as_str().unwrap())
            .unwrap()
            .2;
        let plain = scannable(blob).pop().unwrap();
        for (name, kind, data, link) in tar_members(&plain) {
            files.insert(
                name.trim_start_matches("./").to_string(),
                (kind, data, link),
            );
        }
    }
    let meta = "opt/conda/conda-meta/";
    let mut saw = Vec::new();
    for (name, (kind, data, link)) in &files {
        let Some(rel) = name.strip_prefix(meta) else {
            continue;
        };
        if rel != "explicit.txt" && !rel.ends_with(".json") {
            continue;
        }
        saw.push(rel.to_string());
        if *kind != tar::EntryType::Regular {
            p.0.push(format!(
                "{name} is a {kind:?} (-> {link:?}) in the image, not a file conda-docker wrote"
            ));
            continue;
        }
        if rel == "explicit.txt" {
            let text = String::from_utf8_lossy(data);
            p.check(
                text.contains("@EXPLICIT") && text.contains("evil-1-0.tar.bz2#sha256:"),
                || format!("{name} is not conda-docker's package list:\n{text}"),
            );
        } else if rel == "evil-1-0.json" {
            let record: Option<serde_json::Value> = serde_json::from_slice(data).ok();
            p.check(record.is_some_and(|r| r["name"] == "evil"), || {
                format!("{name} is not evil's conda-meta record")
            });
        }
    }
    for must in ["explicit.txt", "evil-1-0.json"] {
        p.check(saw.iter().any(|s| s == must), || {
            format!("no {meta}{must} in the image: {saw:?}")
        });
    }
    // Nothing the package tried to put outside the prefix is in the image.
    for name in files.keys() {
        p.check(!name.contains("pwned") && !name.contains("canary"), || {
            format!("{name} in the image")
        });
    }
}

fn check_refused(p: &mut Problems, scene: &Scene, out: &Output, w: &Written) {
    if out.status.success() {
        p.0.push("the build should have been refused, but it succeeded".into());
        return;
    }
    p.check(out.status.code().is_some(), || {
        format!("the build was killed ({})", out.status)
    });
    // The error and its causes, not the progress lines (which name the spec) or warnings.
    let all = String::from_utf8_lossy(&out.stderr);
    let stderr = match all.find("\nerror: ") {
        Some(i) => &all[i..],
        None if all.starts_with("error: ") => &all[..],
        None => {
            p.0.push("the build failed without an `error:` message".into());
            p.check(!scene.path("out.tar").exists(), || {
                "a refused build left its output".into()
            });
            return;
        }
    };
    p.check(
        w.packages.iter().any(|n| stderr.contains(n.as_str())),
        || {
            format!(
                "the error does not name the package ({})",
                w.packages.join(" or ")
            )
        },
    );
    p.check(
        w.offending.iter().any(|o| stderr.contains(o.as_str())),
        || {
            format!(
                "the error does not name the offending path (any of {:?})",
                w.offending
            )
        },
    );
    p.check(!scene.path("out.tar").exists(), || {
        "a refused build left its output".into()
    });
}

/// Runs `case`: the hostile build, then a clean build from the same cache; panics with every
/// problem found.
fn hostile(case: &str, expect: Expect) {
    let test = format!("hostile_packages::{}", case.replace('-', "_"));
    let Some(python) = python(&test) else {
        return;
    };
    let scene = Scene::new(case);
    let w = generate(&python, &scene, case);
    let canary = scene.path("canary");
    let before = snapshot(&canary);
    let mut p = Problems::default();

    let out = build(
        &scene.path("input-channel"),
        &scene.path("cache"),
        &scene.path("tmp"),
        &scene.path("out.tar"),
        &[&w.spec],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "{case}: {} {}",
        out.status,
        stderr.lines().collect::<Vec<_>>().join(" | ")
    );
    for d in differences(&before, &snapshot(&canary)) {
        p.0.push(format!("outside the cache and output: {d}"));
    }
    p.check(!stderr.contains("panicked"), || "the build panicked".into());
    let succeeded = out.status.success();
    match expect {
        Expect::RefusedOrInert if succeeded => check_inert(&mut p, &scene, &scene.path("out.tar")),
        _ => check_refused(&mut p, &scene, &out, &w),
    }
    let left = scene.leftovers(if succeeded { &["out.tar"] } else { &[] });
    p.check(left.is_empty(), || format!("left behind: {left:?}"));
    let after_hostile = snapshot(&canary);

    // The same cache, used for a clean package, gives the image a fresh cache gives.
    let clean = scene.path("clean.tar");
    let o = build(
        &common::channel(),
        &scene.path("cache"),
        &scene.path("tmp"),
        &clean,
        &["bzip2"],
    );
    if o.status.success() {
        let (got, want) = (
            std::fs::read(&clean).unwrap(),
            std::fs::read(reference()).unwrap(),
        );
        p.check(sha256(&got) == sha256(&want), || {
            format!(
                "the clean build from this cache differs from one from a fresh cache in {:?}",
                archive_diff(&got, &want)
            )
        });
    } else {
        p.0.push(format!(
            "the clean build from this cache failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    for d in differences(&after_hostile, &snapshot(&canary)) {
        p.0.push(format!(
            "the clean build, outside the cache and output: {d}"
        ));
    }
    let allowed: &[&str] = if succeeded {
        &["out.tar", "clean.tar"]
    } else {
        &["clean.tar"]
    };
    let new: Vec<_> = scene
        .leftovers(allowed)
        .into_iter()
        .filter(|l| !left.contains(l))
        .collect();
    p.check(new.is_empty(), || {
        format!("the clean build left behind: {new:?}")
    });

    assert!(
        p.0.is_empty(),
        "{case} ({expect:?}):\n- {}\nthe hostile build ({}) said:\n{stderr}",
        p.0.join("\n- "),
        out.status
    );
}

macro_rules! cases {
    ($($test:ident: $case:literal => $expect:ident,)*) => {
        const CASES: &[&str] = &[$($case),*];
        $(
            #[test]
            fn $test() {
                hostile($case, Expect::$expect);
            }
        )*
    };
}

cases! {
    // paths.json (and a tar entry) `../../…/<canary>/pwned-dotdot`.
    dotdot_path: "dotdot-path" => Refused,
    // paths.json (and a tar entry) `/<canary>/pwned-absolute`.
    absolute_path: "absolute-path" => Refused,
    // paths.json climbs to the host secret, with its sha256 and size.
    dotdot_secret: "dotdot-secret" => Refused,
    // paths.json names the host secret by its absolute path, with its sha256 and size.
    absolute_secret: "absolute-secret" => Refused,
    // evil-a ships `lib/sneaky -> <canary>`, evil-b (depending on it) `lib/sneaky/pwned-route`.
    symlink_dir_route: "symlink-dir-route" => Refused,
    // The same with a relative `lib/sneaky -> ../../…/<canary>`.
    symlink_dir_route_relative: "symlink-dir-route-relative" => Refused,
    // Softlinks to the host secret named like conda-meta/evil-1-0.json, explicit.txt, history,
    // state and etc/conda/env_vars.d/evil.json.
    host_symlink_meta: "host-symlink-meta" => RefusedOrInert,
    // Only etc/conda/env_vars.d/evil.json and conda-meta/state -> the host secret (JSON: read,
    // it becomes variables).
    host_symlink_env_vars: "host-symlink-env-vars" => RefusedOrInert,
    // The same symlinks, listed in paths.json as regular files (with and without the secret's
    // sha256).
    host_symlink_meta_hardlink: "host-symlink-meta-hardlink" => RefusedOrInert,
    // `.wh.something`: a whiteout, deleting the base's opt/conda/something in the image.
    whiteout: "whiteout" => Refused,
    // `lib/.wh..wh..opq`: an opaque whiteout, hiding the base's opt/conda/lib.
    opaque_whiteout: "opaque-whiteout" => Refused,
    // repodata says `evil`, info/index.json `other`.
    name_mismatch: "name-mismatch" => Refused,
    // paths.json lists share/hostile/missing, which the archive lacks.
    missing_file: "missing-file" => Refused,
    // `share//hostile-empty`.
    empty_component: "empty-component" => Refused,
    // `./share/hostile-dot`.
    dot_component: "dot-component" => Refused,
    // `share/../hostile-inner`, which would stay inside the prefix.
    inner_dotdot: "inner-dotdot" => Refused,
    // `../bzip2-1.0.8-h4bc722e_7/bin/bzip2`: from the package's cache entry into bzip2's.
    cache_poison: "cache-poison" => Refused,
    // Archive entries paths.json does not list: `..` into the canary and into bzip2's cache
    // entry, and an absolute one. Never linked, so they may be dropped silently.
    tar_dotdot_unlisted: "tar-dotdot-unlisted" => RefusedOrInert,
    // share/hostile/grown is 64 times longer than paths.json's size_in_bytes.
    bigger_than_declared: "bigger-than-declared" => Refused,
    // share/hostile/swapped's bytes are not what paths.json's sha256 records.
    sha256_mismatch: "sha256-mismatch" => Refused,
    // An archive entry paths.json does not list, under a plain name.
    tar_unlisted: "tar-unlisted" => RefusedOrInert,
    // A .conda whose zip holds two pkg-*.tar.zst.
    conda_two_pkg: "conda-two-pkg" => Refused,
    // A .conda whose zip holds a member other than metadata.json, info-* and pkg-*.
    conda_extra_member: "conda-extra-member" => Refused,
    // A .conda whose pkg-*.tar.zst is cut in half (its repodata hashes the cut archive).
    conda_truncated: "conda-truncated" => Refused,
    // A .tar.bz2 cut in half, likewise.
    bz2_truncated: "bz2-truncated" => Refused,
    // 256 MiB of zeros in a few hundred kB, declared as 29 bytes: refused before the layer
    // passes what paths.json declares.
    sparse_bomb: "sparse-bomb" => Refused,
}

#[test]
fn every_generator_case_is_tested() {
    let Some(python) = python("hostile_packages::every_generator_case_is_tested") else {
        return;
    };
    let listed = common::run_ok(Command::new(python).arg(generator()).arg("--list"));
    let listed: Vec<&str> = listed.lines().collect();
    assert_eq!(listed, CASES, "tests/common/hostile_packages.py --list");
}
