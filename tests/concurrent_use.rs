//! Concurrent users of one cache: `cache prune --all` in a loop beside eight builds never makes
//! a build fail (a prune waits for the builds using the cache), and every image is whole.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{archive, channel, conda_docker, glibc_base, tempdir};

/// A build of bzip2 into `out` with the cache at `cache`, started.
fn start_build(cache: &Path, out: &Path) -> Child {
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
        .arg("bzip2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `cache prune --all` on `cache`; must succeed.
fn prune(cache: &Path) {
    let out = conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", cache)
        .args(["cache", "prune", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
