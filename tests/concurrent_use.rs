//! Concurrent users of one cache or one output: `cache prune --all` in a loop beside eight
//! builds never makes a build fail (a prune waits for the builds using the cache), and every
//! image is whole; builds writing different tags into one `oci:` layout at once all land in its
//! `index.json`, and umoci unpacks each; two builds to one docker-archive path both succeed and
//! leave one whole archive, the last rename's.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::tools::tool;
use common::{archive, channel, conda_docker, glibc_base, run_ok, tempdir};

/// A build of bzip2 into `out` with the cache at `cache`, started.
fn start_build(cache: &Path, out: &Path) -> Child {
    start_build_to(cache, out.as_os_str(), &[])
}

/// A build of bzip2 to the output `out` (a path or `oci:DIR:TAG`) with `extra` arguments,
/// started.
fn start_build_to(cache: &Path, out: &std::ffi::OsStr, extra: &[&str]) -> Child {
    conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", cache)
        .args([
            "build",
            "-b",
            &format!("docker-archive:{}", glibc_base().display()),
        ])
        .arg("-c")
        .arg(channel())
        .args(["-i", "together:1", "-o"])
        .arg(out)
        .args(extra)
        .arg("bzip2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `cache prune --all` on `cache`; must succeed.
fn prune(cache: &Path) {
    run_ok(
        conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", cache)
            .args(["cache", "prune", "--all"]),
    );
}

#[test]
fn prune_in_a_loop_beside_eight_builds_fails_none() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    // Warm once, so the builds have cache entries to lose.
    let first = dir.path().join("first.tar");
    assert!(start_build(&cache, &first).wait().unwrap().success());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut prunes = 0;
            while !done.load(Ordering::SeqCst) {
                prune(&cache);
                prunes += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            prunes
        });
        let builds: Vec<(std::path::PathBuf, Child)> = (0..8)
            .map(|i| {
                let out = dir.path().join(format!("out-{i}.tar"));
                let child = start_build(&cache, &out);
                (out, child)
            })
            .collect();
        for (out, child) in builds {
            let result = child.wait_with_output().unwrap();
            assert!(
                result.status.success(),
                "{}: {}",
                out.display(),
                String::from_utf8_lossy(&result.stderr)
            );
            let image = archive::open(&out);
            for (layer, diff_id) in image.layers.iter().zip(image.diff_ids()) {
                assert_eq!(archive::sha256(&image.files[layer]), diff_id);
            }
        }
        done.store(true, Ordering::SeqCst);
        assert!(pruner.join().unwrap() > 0, "prune ran");
    });
}

#[test]
fn builds_writing_tags_into_one_layout_at_once_keep_every_tag() {
    let test = "builds_writing_tags_into_one_layout_at_once_keep_every_tag";
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    // First into a layout none of them finds (each makes it), then into the one that is there.
    let rounds: [&[&str]; 2] = [&["a", "b", "c"], &["d", "e", "f"]];
    for tags in rounds {
        let builds: Vec<Child> = tags
            .iter()
            .map(|t| {
                // Each image its own (a label): oci-image-tool refuses a ref whose manifest
                // another ref names too.
                let out = format!("oci:{}:{t}", layout.display());
                start_build_to(&cache, out.as_ref(), &["--label", &format!("tag={t}")])
            })
            .collect();
        for child in builds {
            let result = child.wait_with_output().unwrap();
            assert!(
                result.status.success(),
                "{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c", "d", "e", "f"], "{index}");
    // umoci unpacks each tag, checking every blob's digest. (oci-image-tool 1.0.0-rc cannot
    // pick one image of a layout holding several: "descriptor retrieved by refs [name=a] is not
    // unique", whichever way the layout was written.)
    for t in names {
        if let Some(mut umoci) = tool("umoci", test) {
            let bundle = dir.path().join(format!("bundle-{t}"));
            run_ok(
                umoci
                    .args(["unpack", "--image", &format!("{}:{t}", layout.display())])
                    .arg(&bundle),
            );
            assert!(bundle.join("rootfs/opt/conda/bin/bzip2").exists(), "{t}");
        }
    }
}

#[test]
fn two_builds_to_one_docker_archive_both_succeed_and_leave_one_whole_archive() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let out = dir.path().join("shared.tar");
    // Different images (a label each), so the archive left is whole only if one rename won.
    for round in 0..3 {
        let builds: Vec<Child> = ["one", "two"]
            .iter()
            .map(|who| {
                let label = format!("who={who}-{round}");
                start_build_to(&cache, out.as_os_str(), &["--label", &label])
            })
            .collect();
        for child in builds {
            let result = child.wait_with_output().unwrap();
            assert!(
                result.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
        let image = archive::open(&out);
        for (layer, diff_id) in image.layers.iter().zip(image.diff_ids()) {
            assert_eq!(
                archive::sha256(&image.files[layer]),
                diff_id,
                "round {round}"
            );
        }
        let label = image.config["config"]["Labels"]["who"]
            .as_str()
            .unwrap_or_default();
        assert!(
            label == format!("one-{round}") || label == format!("two-{round}"),
            "round {round}: the archive's image is neither build's ({label:?})"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".conda-docker-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: temporaries left: {leftovers:?}"
        );
    }
}
