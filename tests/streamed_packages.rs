//! Cold builds read each package from its verified archive, never extracted: the image is the
//! one an extracted package (rattler's cache, as pixi leaves it) and a warm build give; the
//! cache keeps archives and small entries only; an archive unlike its record leaves nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::http_server::StaticServer;
use common::{conda_docker, copy_channel, glibc_base, ok, tempdir};

/// The specs built: real conda-forge packages with binary and text placeholders, symlinks and
/// `.conda` and `.tar.bz2` archives (`_libgcc_mutex`, `_openmp_mutex`).
const SPECS: &[&str] = &["bzip2", "zstd"];

/// `conda-docker build` of `specs` from `channel` with the cache `cache` into `out`.
fn build(channel: &str, cache: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .args([
            "-c",
            channel,
            "--channel-name",
            "conda-forge=demo",
            "-i",
            "t:1",
            "-o",
        ])
        .arg(out)
        .args(extra)
        .args(SPECS);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running conda-docker")
}

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                found.push(rel);
            }
        }
    }
    found.sort();
    found
}

/// Extracts every archive of `channel` into rattler's package cache `pkgs`, as pixi does.
fn extract_with_rattler(channel: &Path, pkgs: &Path) {
    let cache = rattler_cache::package_cache::PackageCache::new(pkgs);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for subdir in ["linux-64", "noarch"] {
        let repodata = channel.join(subdir).join("repodata.json");
        let data: rattler_conda_types::RepoData =
            serde_json::from_slice(&std::fs::read(&repodata).unwrap()).unwrap();
        for (file, record) in data.packages.iter().chain(data.conda_packages.iter()) {
            let path = channel.join(subdir).join(file.to_string());
            runtime
                .block_on(cache.get_or_fetch_from_path(&path, Some(record), None))
                .unwrap_or_else(|e| panic!("rattler extracting {}: {e}", path.display()));
        }
    }
}

#[test]
fn streamed_extracted_and_warm_builds_give_the_same_image() {
    let dir = tempdir();
    let channel = common::channel();
    let channel_arg = channel.display().to_string();
    let (streamed, warm, extracted) = (
        dir.path().join("streamed.tar"),
        dir.path().join("warm.tar"),
        dir.path().join("extracted.tar"),
    );
    let cold_cache = dir.path().join("cold");
    let id = ok(run(&mut build(&channel_arg, &cold_cache, &streamed, &[])));
    let again = ok(run(&mut build(&channel_arg, &cold_cache, &warm, &[])));
    assert_eq!(id, again, "the warm build's image ID");

    // A cache where rattler extracted every package: read in place, no archive fetched.
    let pixi_cache = dir.path().join("pixi");
    extract_with_rattler(&channel, &pixi_cache.join("pkgs"));
    let from_extracted = ok(run(&mut build(&channel_arg, &pixi_cache, &extracted, &[])));
    assert_eq!(
        id, from_extracted,
        "the image ID built from extracted packages"
    );
    let archives = files(&pixi_cache.join("pkgs-v1"));
    assert!(
        archives.is_empty(),
        "archives fetched although rattler's cache had every package: {archives:?}"
    );

    let bytes = |p: &PathBuf| std::fs::read(p).unwrap();
    assert!(
        bytes(&streamed) == bytes(&warm),
        "streamed and warm docker-archives differ"
    );
    assert!(
        bytes(&streamed) == bytes(&extracted),
        "streamed and extracted docker-archives differ"
    );
    // The image runs the packages' programs.
    assert!(id.starts_with("sha256:"), "{id}");
}

/// The kind of a cache file, or `None` for one that should not be there.
fn kind(rel: &str) -> Option<&'static str> {
    let (bucket, name) = rel.split_once('/').unwrap_or(("", rel));
    match bucket {
        "pkgs-v1" if name.ends_with(".conda") || name.ends_with(".tar.bz2") => Some("archive"),
        "contents-v3" if name.ends_with(".json") => Some("contents"),
        "oci-v1" if name.starts_with("blobs/sha256/") => Some("blob"),
        "oci-v1" if name.starts_with("layer-keys/sha256/") => Some("key"),
        // The image's cache record, kept so a warm build does not compress it again.
        "oci-v1" if name.starts_with("records/sha256/") => Some("record"),
        // Locks: the store's, rattler's package cache's; the repodata cache of the HTTP channel.
        "" if name == ".conda-docker-store.lock" => Some("lock"),
        "pkgs" if !name.contains('/') && name.contains("lock") => Some("lock"),
        "repodata" => Some("repodata"),
        _ => None,
    }
}

#[test]
fn a_cold_build_keeps_archives_and_small_entries_only_and_a_second_prefix_reads_no_network() {
    let test = "streamed_packages::a_cold_build_keeps_archives_and_small_entries_only";
    let dir = tempdir();
    let channel = dir.path().join("channel");
    copy_channel(&channel);
    let Some(server) = StaticServer::start(&channel, &dir.path().join("access.log"), test) else {
        return;
    };
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.tar");
    ok(run(&mut build(&server.url(""), &cache, &out, &[])));
    let fetched = server.archives().len();
    assert!(fetched >= 6, "archives fetched: {:?}", server.archives());

    let listed = files(&cache);
    let unexpected: Vec<&String> = listed.iter().filter(|f| kind(f).is_none()).collect();
    assert!(
        unexpected.is_empty(),
        "a cold build left files beyond archives and small entries: {unexpected:?}"
    );
    let per_package = listed
        .iter()
        .filter(|f| matches!(kind(f), Some("archive" | "contents" | "blob" | "key")))
        .count() as f64
        / fetched as f64;
    assert!(
        per_package <= 4.0,
        "{per_package} cache files per package (at most 4): {listed:#?}"
    );

    // Another prefix is another layer key: made again from the archives kept, none downloaded.
    let other = dir.path().join("other.tar");
    ok(run(&mut build(
        &server.url(""),
        &cache,
        &other,
        &["--target-prefix", "/opt/other"],
    )));
    assert_eq!(
        server.archives().len(),
        fetched,
        "the second build downloaded archives: {:?}",
        server.archives()
    );
}

/// The archive of `name` in the channel copy `channel`.
fn archive_of(channel: &Path, name: &str) -> PathBuf {
    let dir = channel.join("linux-64");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
        .unwrap_or_else(|| panic!("no {name} archive in {}", dir.display()))
}

/// Flips the last byte of the file at `path`.
fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_archive_unlike_its_record_is_refused_and_leaves_nothing_in_the_cache() {
    let dir = tempdir();
    let channel = dir.path().join("channel");
    copy_channel(&channel);
    flip_last_byte(&archive_of(&channel, "bzip2"));
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.tar");
    let o = run(&mut build(
        &channel.display().to_string(),
        &cache,
        &out,
        &[],
    ));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a build from a damaged archive succeeded"
    );
    assert!(
        stderr.contains("bzip2-1.0.8") && stderr.contains("sha256"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused build left its output");
    let kept: Vec<String> = files(&cache)
        .into_iter()
        .filter(|f| f.starts_with("pkgs-v1/sha256-") || f.starts_with("contents-v3/"))
        .filter(|f| !f.contains(".conda-docker-"))
        .collect();
    let bzip2_sha = {
        let repodata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(channel.join("linux-64/repodata.json")).unwrap())
                .unwrap();
        repodata["packages.conda"]["bzip2-1.0.8-h4bc722e_7.conda"]["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        kept.iter().all(|f| !f.contains(&bzip2_sha)),
        "the damaged archive left an entry: {kept:?}"
    );
}

#[test]
fn a_damaged_archive_in_the_cache_is_fetched_again() {
    let dir = tempdir();
    let channel = common::channel().display().to_string();
    let cache = dir.path().join("cache");
    let first = dir.path().join("first.tar");
    ok(run(&mut build(&channel, &cache, &first, &[])));
    let archives = files(&cache.join("pkgs-v1"));
    let damaged = cache.join("pkgs-v1").join(&archives[0]);
    let healthy = std::fs::read(&damaged).unwrap();
    flip_last_byte(&damaged);
    let second = dir.path().join("second.tar");
    let o = run(&mut build(
        &channel,
        &cache,
        &second,
        &["--target-prefix", "/opt/other"],
    ));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("damaged"),
        "no warning about the damaged archive: {stderr}"
    );
    assert!(
        std::fs::read(&damaged).unwrap() == healthy,
        "the cached archive was not healed"
    );
}
