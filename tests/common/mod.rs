//! Shared test support: the fixture channel, a glibc base image, and the real tools.
#![allow(dead_code)]

pub mod archive;
pub mod base;
pub mod fault_proxy;
pub mod http_server;
pub mod tar_craft;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real conda-forge channel vendored in the repository (bzip2, zstd, openssl, ncurses and deps).
pub fn channel() -> PathBuf {
    repo().join("demo/channel")
}

/// Copies the fixture channel to `dest`, for tests that move it, rename it or take parts away.
pub fn copy_channel(dest: &Path) {
    for sub in ["linux-64", "noarch"] {
        std::fs::create_dir_all(dest.join(sub)).expect("creating the channel copy");
        for e in std::fs::read_dir(channel().join(sub)).expect("reading the fixture channel") {
            let e = e.expect("reading the fixture channel");
            std::fs::copy(e.path(), dest.join(sub).join(e.file_name()))
                .expect("copying the fixture channel");
        }
    }
}

/// A scratch directory for one test, removed when dropped. Its name is lowercase, since podman
/// derives image names from `oci:` paths.
pub fn tempdir() -> tempfile::TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    tempfile::Builder::new()
        .prefix(&format!("cdtest-{}-{n}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .expect("creating a temporary directory")
}

/// A directory that lives as long as the test process and is removed when it exits (statics
/// are never dropped, so a `TempDir` in one would be left behind).
fn process_dir() -> PathBuf {
    let dir = tempdir().keep();
    tools::remove_at_exit(&dir);
    dir
}

/// A package cache shared by the tests of one run (filled once, read many times).
pub fn cache_dir() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(process_dir)
}

/// The glibc base image (docker-archive, tagged `glibc-base:test`), built once per run.
pub fn glibc_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let path = process_dir().join("base.tar");
        base::write_glibc_base(&path, "glibc-base:test").expect("building the glibc base image");
        path
    })
}

/// `conda-docker` with the test cache and fixture channel; add the rest of the arguments.
pub fn conda_docker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conda-docker"));
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache_dir());
    cmd.env_remove("SOURCE_DATE_EPOCH");
    // A PyPI index the user set up must not leak into the tests.
    for var in [
        "PIP_INDEX_URL",
        "UV_INDEX_URL",
        "UV_DEFAULT_INDEX",
        "PIP_EXTRA_INDEX_URL",
        "UV_EXTRA_INDEX_URL",
        "UV_INDEX",
        "PIP_FIND_LINKS",
        "UV_FIND_LINKS",
        "PIP_NO_INDEX",
        "UV_NO_INDEX",
        "PIP_CERT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Builds `specs` on the glibc base into `output`, with `extra` arguments; panics on failure.
pub fn build(output: &str, image: &str, extra: &[&str], specs: &[&str]) -> Output {
    let base = format!("docker-archive:{}", glibc_base().display());
    let out = conda_docker()
        .args(["build", "-b", &base, "-c"])
        .arg(channel())
        .args(["-i", image, "-o", output])
        .args(extra)
        .args(specs)
        .output()
        .expect("running conda-docker");
    assert!(
        out.status.success(),
        "conda-docker build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stdout of a command that must succeed.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a build into `dir/out.tar` that must fail; returns stderr. Nothing but the test's own
/// inputs (named `input*`) may be left in `dir`.
pub fn failing_build(dir: &Path, configure: impl FnOnce(&mut Command)) -> String {
    let mut cmd = conda_docker();
    cmd.args(["build", "-o"]).arg(dir.join("out.tar"));
    configure(&mut cmd);
    let out: Output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the build should have failed:\n{stderr}"
    );
    assert_no_output(dir);
    stderr
}

/// Nothing but inputs the test made itself (named `input*`) is left in `dir`.
pub fn assert_no_output(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("input"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A one-package channel holding this machine's Python as a conda `python` package (see
/// tests/common/host_python.py), and its `X.Y` version.
pub fn host_python_channel(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let channel = dir.join("python-channel");
    let script = repo().join("tests/common/host_python.py");
    let version = run_ok(
        std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&channel),
    );
    let xy = version
        .trim()
        .rsplit_once('.')
        .expect("X.Y.Z")
        .0
        .to_string();
    (channel, xy)
}
