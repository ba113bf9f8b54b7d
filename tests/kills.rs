//! A build killed with SIGKILL at any point blocks nothing: the next build with the same cache
//! and output succeeds, gives the image a clean build gives, and removes the debris.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{channel, conda_docker, glibc_base, tempdir};

fn build(cache: &Path, output: &str) -> std::process::Command {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache)
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("-c")
        .arg(channel())
        .args(["-i", "killed:test", "-o", output])
        .args(["bzip2", "zstd", "openssl", "ncurses"]);
    cmd
}

fn image_id(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("running conda-docker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Our temporaries (`.conda-docker-*.tmp`) anywhere below `dir`.
fn debris(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".conda-docker-") && name.ends_with(".tmp") {
            found.push(e.path());
        } else if e.file_type().is_ok_and(|t| t.is_dir()) && name != "pkgs" {
            found.extend(debris(&e.path()));
        }
    }
    found
}

#[test]
fn a_killed_build_leaves_nothing_that_blocks_the_next() {
    let dir = tempdir();
    let d = dir.path();
    let reference_cache = d.join("reference-cache");
    let oci_ref = format!("oci:{}:v1", d.join("reference-layout").display());
    let reference = image_id(&mut build(&reference_cache, &oci_ref));
    let archive_ref = image_id(&mut build(
        &reference_cache,
        &d.join("reference.tar").display().to_string(),
    ));
    assert_eq!(reference, archive_ref);

    for (what, output) in [
        ("oci", format!("oci:{}:v1", d.join("out-layout").display())),
        ("archive", d.join("out.tar").display().to_string()),
    ] {
        let cache = d.join(format!("cache-{what}"));
        let mut killed_after_work = 0;
        for delay_ms in [50u64, 200, 400, 800, 1500] {
            let mut child = build(&cache, &output)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = child.kill();
            let status = child.wait().unwrap();
            if !status.success() {
                killed_after_work += 1;
            }
            // Whatever it left, the next build succeeds and gives the clean build's image.
            let id = image_id(&mut build(&cache, &output));
            assert_eq!(id, reference, "{what}: killed after {delay_ms} ms");
            let left: Vec<PathBuf> = debris(d)
                .into_iter()
                .filter(|p| !p.starts_with(&reference_cache))
                .collect();
            assert!(
                left.is_empty(),
                "{what}: debris after the next build: {left:?}"
            );
        }
        assert!(
            killed_after_work > 0,
            "{what}: every build finished before the kill"
        );
    }
}
