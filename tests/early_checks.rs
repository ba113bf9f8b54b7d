//! What can be known before the solve is checked before it: outputs that cannot be written,
//! a `pip:` section with no python to install it into, and a package name no channel has
//! (answered with the closest names). Each failure names its cause and downloads nothing.

mod common;

use std::path::Path;

use common::{channel, failing_build, glibc_base, tempdir};

fn base_arg() -> String {
    format!("docker-archive:{}", glibc_base().display())
}

/// Nothing was solved or downloaded into the package cache `cache`.
fn assert_nothing_fetched(cache: &Path, stderr: &str) {
    assert!(!cache.exists(), "the package cache was used:\n{stderr}");
    assert!(!stderr.contains("fetching"), "{stderr}");
}

#[test]
fn an_output_no_file_can_be_made_in_fails_before_the_solve() {
    let dir = tempdir();
    let inputs = tempdir();
    let cache = inputs.path().join("cache");
    for (flag, value) in [
        ("-o", "/proc/x.tar"),
        ("-o", "oci:/proc/layout"),
        ("--lock-output", "/proc/lock.txt"),
        ("--sbom-dir", "/proc/sboms"),
    ] {
        let err = failing_build(dir.path(), |c| {
            c.args(["-b", &base_arg(), "-c"]).arg(channel()).args([
                "--cache-dir",
                cache.to_str().unwrap(),
                flag,
                value,
                "bzip2",
            ]);
        });
        assert!(err.contains("cannot create a file in `/proc`"), "{err}");
        assert!(!err.contains("solving"), "{value}: solved first:\n{err}");
        assert_nothing_fetched(&cache, &err);
    }
}

#[test]
fn a_pip_section_without_python_is_refused_before_any_download() {
    let dir = tempdir();
    let inputs = tempdir();
    let cache = inputs.path().join("cache");
    let env = inputs.path().join("environment.yml");
    std::fs::write(
        &env,
        "name: nopython\ndependencies:\n  - bzip2\n  - pip:\n    - requests==2.32.3\n",
    )
    .unwrap();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .args(["--cache-dir", cache.to_str().unwrap(), "-f"])
            .arg(&env);
    });
    assert!(err.contains("needs python"), "{err}");
    assert!(!err.contains("fetching"), "{err}");
    assert!(
        !cache.join("pkgs").exists()
            && !cache.join("pkgs-v1").exists()
            && !cache.join("pypi-v1").exists(),
        "something was downloaded:\n{err}"
    );
}

#[test]
fn a_misspelled_package_gets_the_closest_names() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .args(["zstd", "bzpi2"]);
    });
    assert!(err.contains("no package `bzpi2`"), "{err}");
    assert!(err.contains("did you mean bzip2?"), "{err}");
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .arg("no-such-thing-at-all");
    });
    assert!(err.contains("no package `no-such-thing-at-all`"), "{err}");
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn an_sbom_dir_through_a_symlink_is_refused_as_other_outputs_are() {
    let dir = tempdir();
    let inputs = tempdir();
    let cache = inputs.path().join("cache");
    let real = inputs.path().join("real-sboms");
    std::fs::create_dir(&real).unwrap();
    let link = inputs.path().join("sboms");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .args(["--cache-dir", cache.to_str().unwrap(), "--sbom-dir"])
            .arg(&link)
            .arg("bzip2");
    });
    assert!(
        err.contains("--sbom-dir") && err.contains("symlink"),
        "{err}"
    );
    assert_nothing_fetched(&cache, &err);
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written through it"
    );
}
