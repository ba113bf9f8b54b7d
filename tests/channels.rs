//! Local channels are recorded as what they are: a directory no `--channel-name` or `--mirror`
//! names is its `file://` URL (never an invented `https://conda.anaconda.org/<dir name>`), with
//! one warning saying how to name it; `-c DIR` and `-c file://DIR` are one channel.

mod common;

use common::ok;

use std::path::Path;
use std::process::Output;

use common::{conda_docker, copy_channel, glibc_base, run_ok, tempdir};

/// `conda-docker build` of bzip2 on the glibc base into `out`, with `args` (channels among
/// them) and the package cache `cache`.
fn build(cache: &Path, out: &Path, args: &[&str]) -> Output {
    conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", cache)
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .args(["-i", "local:1", "-o"])
        .arg(out)
        .args(args)
        .output()
        .expect("running conda-docker")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The warning lines of a build's stderr that name `--channel-name`.
fn naming_warnings(out: &Output) -> usize {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("--channel-name"))
        .count()
}

#[test]
fn a_directory_and_its_file_url_are_one_channel_recorded_as_itself() {
    let dir = tempdir();
    let d = dir.path();
    // Named like the channel it copies: still not conda-forge unless said so.
    let channel = d.join("conda-forge");
    copy_channel(&channel);
    let url = url::Url::from_directory_path(channel.canonicalize().unwrap()).unwrap();
    let cache = d.join("cache");
    let (a, b) = (d.join("a.tar"), d.join("b.tar"));
    let lock = d.join("lock.yml");
    let from_dir = build(
        &cache,
        &a,
        &[
            "-c",
            channel.to_str().unwrap(),
            "--lock-output",
            lock.to_str().unwrap(),
            "bzip2",
        ],
    );
    let id = ok(&from_dir);
    assert_eq!(naming_warnings(&from_dir), 1, "{}", stderr(&from_dir));
    let from_url = build(&cache, &b, &["-c", url.as_str(), "bzip2"]);
    assert_eq!(
        ok(&from_url),
        id,
        "-c DIR and -c file://DIR gave two images"
    );
    assert_eq!(naming_warnings(&from_url), 1, "{}", stderr(&from_url));

    // The records, the SBOM and the lockfile hold the channel's own URL.
    let channel_url = url.as_str().trim_end_matches('/');
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains(&format!("{channel_url}/linux-64/bzip2-1.0.8-")),
        "{text}"
    );
    assert!(!text.contains("conda.anaconda.org"), "{text}");
    let archive = format!("docker-archive:{}", a.display());
    let sbom = run_ok(conda_docker().args(["sbom", "--format", "spdx", &archive]));
    assert!(!sbom.contains("channel=conda-forge"), "an invented channel");
    assert!(sbom.contains("channel=file"), "{sbom}");
    let explicit = d.join("explicit.txt");
    run_ok(conda_docker().args(["lock", &archive, "-o", explicit.to_str().unwrap()]));
    let text = std::fs::read_to_string(&explicit).unwrap();
    assert!(
        text.contains(&format!("{channel_url}/linux-64/bzip2-")),
        "{text}"
    );

    // Each lock rebuilds the image on a fresh cache, with no channel given; given the
    // directory too, no warning (its packages are fetched from it).
    for (n, file) in [&lock, &explicit].into_iter().enumerate() {
        let out = d.join(format!("re-{n}.tar"));
        let fresh = d.join(format!("fresh-{n}"));
        let rebuilt = build(&fresh, &out, &["-f", file.to_str().unwrap()]);
        assert_eq!(ok(&rebuilt), id, "{} rebuilt another image", file.display());
        let with_dir = build(
            &fresh,
            &out,
            &[
                "-f",
                file.to_str().unwrap(),
                "-c",
                channel.to_str().unwrap(),
            ],
        );
        assert_eq!(ok(&with_dir), id);
        assert_eq!(naming_warnings(&with_dir), 0, "{}", stderr(&with_dir));
    }
}

#[test]
fn a_named_local_channel_is_the_channel_it_names_and_is_not_warned_about() {
    let dir = tempdir();
    let d = dir.path();
    let channel = d.join("copy");
    copy_channel(&channel);
    let named = format!("conda-forge={}", channel.display());
    let out = d.join("named.tar");
    let lock = d.join("explicit.txt");
    let built = build(
        &d.join("cache"),
        &out,
        &[
            "-c",
            channel.to_str().unwrap(),
            "--channel-name",
            &named,
            "--lock-output",
            lock.to_str().unwrap(),
            "bzip2",
        ],
    );
    ok(&built);
    assert_eq!(naming_warnings(&built), 0, "{}", stderr(&built));
    let text = std::fs::read_to_string(&lock).unwrap();
    assert!(
        text.contains("https://conda.anaconda.org/conda-forge/linux-64/bzip2-"),
        "{text}"
    );
    assert!(!text.contains("file://"), "{text}");
    let archive = format!("docker-archive:{}", out.display());
    let sbom = run_ok(conda_docker().args(["sbom", "--format", "spdx", &archive]));
    assert!(sbom.contains("channel=conda-forge"), "{sbom}");

    // The lock names conda-forge: given with it, the unnamed directory stands in for nothing,
    // and the build says so (the packages come from the cache here).
    let rebuilt = build(
        &d.join("cache"),
        &d.join("rebuilt.tar"),
        &[
            "-f",
            lock.to_str().unwrap(),
            "-c",
            channel.to_str().unwrap(),
        ],
    );
    ok(&rebuilt);
    assert!(
        stderr(&rebuilt).contains("no package is fetched from") && naming_warnings(&rebuilt) == 1,
        "{}",
        stderr(&rebuilt)
    );
}

#[test]
fn a_build_for_several_platforms_warns_once_naming_every_unnamed_channel() {
    let dir = tempdir();
    let aarch64 = common::repo().join("tests/fixtures/channel-aarch64");
    let out = conda_docker()
        .args([
            "build",
            "--platform",
            "linux-64",
            "--platform",
            "linux-aarch64",
        ])
        .args(["-b", "scratch", "-c"])
        .arg(common::channel())
        .arg("-c")
        .arg(&aarch64)
        .arg("-o")
        .arg(format!("oci:{}", dir.path().join("layout").display()))
        .arg("bzip2")
        .output()
        .expect("running conda-docker");
    ok(&out);
    assert_eq!(naming_warnings(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("local channels "), "{err}");
    assert!(err.contains(&aarch64.display().to_string()), "{err}");
}
