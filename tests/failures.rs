//! Bad input: each failure exits non-zero, names its cause, and leaves no output behind.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{channel, conda_docker, glibc_base, tempdir};

fn base_arg() -> String {
    format!("docker-archive:{}", glibc_base().display())
}

/// Runs a build into `dir/out.tar` that must fail; returns stderr.
fn failing_build(dir: &Path, configure: impl FnOnce(&mut Command)) -> String {
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

/// Nothing but inputs the test made itself is left in `dir`.
fn assert_no_output(dir: &Path) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("input"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn unsolvable_spec_names_the_package() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .arg("bzip2>=99");
    });
    assert!(
        err.contains("cannot be satisfied") && err.contains("bzip2 >=99"),
        "{err}"
    );

    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .args(["zstd", "libzlib<1.3"]);
    });
    assert!(err.contains("libzlib"), "{err}");
}

#[test]
fn missing_channels_are_named() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-c", "/no/such/channel", "bzip2"]);
    });
    assert!(
        err.contains("channel `/no/such/channel`") && err.contains("does not exist"),
        "{err}"
    );

    let err = failing_build(dir.path(), |c| {
        c.args([
            "-b",
            &base_arg(),
            "-c",
            "http://127.0.0.1:9/nothing-listens-here",
            "bzip2",
        ]);
    });
    assert!(
        err.contains("reading repodata from `http://127.0.0.1:9/nothing-listens-here/`"),
        "{err}"
    );
}

#[test]
fn a_package_whose_sha256_does_not_match_is_refused() {
    let dir = tempdir();
    // A copy of the channel whose repodata promises another sha256 for bzip2.
    let bad = dir.path().join("input-channel");
    common::copy_channel(&bad);
    let repodata = bad.join("linux-64/repodata.json");
    let text = std::fs::read_to_string(&repodata).unwrap();
    let real = "5ced96500d945fb286c9c838e54fa759aa04a7129c59800f0846b4335cee770d";
    assert!(text.contains(real));
    std::fs::write(&repodata, text.replace(real, &"0".repeat(64))).unwrap();
    let cache = dir.path().join("input-cache");
    let err = failing_build(dir.path(), |c| {
        c.env("CONDA_DOCKER_CACHE_DIR", &cache)
            .args(["-b", &base_arg(), "-c"])
            .arg(&bad)
            .arg("bzip2");
    });
    assert!(
        err.contains("bzip2") && err.to_lowercase().contains("hash"),
        "{err}"
    );
}

#[test]
fn unreadable_or_malformed_base_archives_are_errors() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "docker-archive:/no/such/base.tar", "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(err.contains("/no/such/base.tar"), "{err}");

    let garbage = dir.path().join("input-garbage.tar");
    std::fs::write(&garbage, b"this is not a tar file at all".repeat(40)).unwrap();
    let err = failing_build(dir.path(), |c| {
        c.arg("-b")
            .arg(format!("docker-archive:{}", garbage.display()))
            .arg("-c")
            .arg(channel())
            .arg("bzip2");
    });
    assert!(
        err.contains("input-garbage.tar") && err.contains("not a readable tar archive"),
        "{err}"
    );

    // A real archive cut short: manifest.json points at layers that are not there.
    let bytes = std::fs::read(glibc_base()).unwrap();
    let truncated = dir.path().join("input-truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = failing_build(dir.path(), |c| {
        c.arg("-b")
            .arg(format!("docker-archive:{}", truncated.display()))
            .arg("-c")
            .arg(channel())
            .arg("bzip2");
    });
    assert!(err.contains("input-truncated.tar"), "{err}");

    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "docker-archive:/etc/hostname:missing:tag", "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(err.contains("/etc/hostname"), "{err}");
}

#[test]
fn a_missing_image_in_an_archive_lists_what_it_holds() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.arg("-b")
            .arg(format!("docker-archive:{}:nope:1", glibc_base().display()))
            .arg("-c")
            .arg(channel())
            .arg("bzip2");
    });
    assert!(
        err.contains("nope:1") && err.contains("glibc-base:test"),
        "{err}"
    );
}

#[test]
fn unwritable_outputs_fail_before_any_work() {
    let dir = tempdir();
    let out = conda_docker()
        .args(["build", "-b", "scratch", "-c"])
        .arg(channel())
        .args(["-o", "/no/such/dir/out.tar", "bzip2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot write to `/no/such/dir/out.tar`") && err.contains("does not exist"),
        "{err}"
    );
    // A directory given as a docker-archive path.
    let out = conda_docker()
        .args(["build", "-b", "scratch", "-c"])
        .arg(channel())
        .arg("-o")
        .arg(dir.path())
        .arg("bzip2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is a directory"),
        "{err}"
    );
    assert_no_output(dir.path());
}

#[test]
fn bad_arguments_are_explained() {
    let dir = tempdir();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "scratch", "--platform", "osx-arm64", "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(err.contains("osx-arm64") && err.contains("Linux"), "{err}");
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "scratch", "-c"]).arg(channel());
    });
    assert!(err.contains("no packages"), "{err}");
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "scratch", "-i", "Bad Name", "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(err.contains("invalid image reference `Bad Name`"), "{err}");
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", "127.0.0.1:9/base:1", "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(
        err.contains("reading base image `127.0.0.1:9/base:1`")
            && err.contains("registry `127.0.0.1:9`: cannot reach it"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_the_build_and_leaves_nothing() {
    // SIGINT (Ctrl-C), SIGTERM (timeout, docker stop, CI) and SIGHUP stop a build alike.
    for signal in [2, 15, 1] {
        stop_a_build_with(signal);
    }
}

fn stop_a_build_with(signal: i32) {
    let dir = tempdir();
    // A cold cache makes the install long enough to interrupt.
    for delay_ms in [400u64, 150, 50, 10] {
        let cache = tempdir();
        let child = conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", cache.path())
            .args(["build", "-b", &base_arg(), "-c"])
            .arg(channel())
            .arg("-o")
            .arg(dir.path().join("out.tar"))
            .args(["bzip2", "zstd", "openssl", "ncurses"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        // SAFETY: sending a signal to our own child process.
        unsafe { libc_kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            // Finished before the signal arrived: try again sooner.
            std::fs::remove_file(dir.path().join("out.tar")).unwrap();
            continue;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(128 + signal),
            "signal {signal}: {err}"
        );
        assert!(err.contains("cancelled"), "{err}");
        assert_no_output(dir.path());
        // The cache is still usable.
        let again = conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", cache.path())
            .args(["build", "-b", &base_arg(), "-c"])
            .arg(channel())
            .arg("-o")
            .arg(dir.path().join("out.tar"))
            .args(["bzip2", "zstd", "openssl", "ncurses"])
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        return;
    }
    panic!("the build always finished before signal {signal} arrived");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn settings_an_image_cannot_run_with_are_refused_before_any_work() {
    let dir = tempdir();
    for (args, flag, says) in [
        (&["--user", "app:4294967295"][..], "--user", "out of range"),
        (&["--workdir", "data"][..], "--workdir", "absolute"),
        (&["--expose", "abc"][..], "--expose", "PORT"),
        (&["--env", "A B=1"][..], "--env", "name"),
        (&["--env", "A=1\n2"][..], "--env", "newlines"),
        (&["--label", "a=1\n2"][..], "--label", "newlines"),
        (&["--annotation", "a=1\n2"][..], "--annotation", "newlines"),
        (
            &["--target-prefix", "/"][..],
            "--target-prefix",
            "base system",
        ),
        (
            &["--target-prefix", "/usr"][..],
            "--target-prefix",
            "base system",
        ),
        (
            &["--target-prefix", "opt/conda"][..],
            "--target-prefix",
            "absolute",
        ),
    ] {
        let err = failing_build(dir.path(), |c| {
            c.args(["-b", &base_arg(), "-c"])
                .arg(channel())
                .args(args)
                .arg("bzip2");
        });
        assert!(err.contains(flag) && err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains("solving"),
            "{args:?} was refused only after work: {err}"
        );
    }
    let err = failing_build(dir.path(), |c| {
        c.env("SOURCE_DATE_EPOCH", "yesterday")
            .args(["-b", &base_arg(), "-c"])
            .arg(channel())
            .arg("bzip2");
    });
    assert!(
        err.contains("SOURCE_DATE_EPOCH") && err.contains("yesterday"),
        "{err}"
    );
}

#[test]
fn the_target_prefix_is_normalised() {
    let dir = tempdir();
    let out = dir.path().join("image.tar");
    let run = conda_docker()
        .args(["build", "-b", &base_arg(), "-c"])
        .arg(channel())
        .args(["--target-prefix", "//opt/./env//", "-o"])
        .arg(&out)
        .arg("bzip2")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let archive = common::archive::open(&out);
    let env: Vec<&str> = archive.config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"CONDA_PREFIX=/opt/env"), "{env:?}");
}

#[test]
fn outputs_that_are_not_regular_files_are_refused_and_kept() {
    let dir = tempdir();
    let d = dir.path();
    // An empty path, refused before any work.
    let run = conda_docker()
        .args(["build", "-b", &base_arg(), "-c"])
        .arg(channel())
        .args(["-o", "", "bzip2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("no file named"),
        "{err}"
    );
    assert!(!err.contains("solving"), "{err}");

    // A symlink and a FIFO, as -o and as --lock-output: refused, and left as they were.
    let target = d.join("input-target");
    std::fs::write(&target, b"keep me").unwrap();
    let link = d.join("input-link.tar");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = d.join("input-fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (flag, path) in [
        ("-o", &link),
        ("-o", &fifo),
        ("--lock-output", &link),
        ("--lock-output", &fifo),
    ] {
        let run = conda_docker()
            .args(["build", "-b", &base_arg(), "-c"])
            .arg(channel())
            .arg(flag)
            .arg(path)
            .args(if flag == "-o" {
                vec![]
            } else {
                vec!["-o".to_string(), d.join("out.tar").display().to_string()]
            })
            .arg("bzip2")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            !run.status.success() && err.contains("not a regular file"),
            "{flag} {}: {err}",
            path.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(&fifo).unwrap().file_type()
    ));
    assert_no_output(d);
}

#[test]
fn an_empty_lockfile_is_refused() {
    let dir = tempdir();
    let lock = dir.path().join("input-empty.txt");
    std::fs::write(&lock, "# platform: linux-64\n@EXPLICIT\n").unwrap();
    let err = failing_build(dir.path(), |c| {
        c.args(["-b", &base_arg(), "-f"]).arg(&lock);
    });
    assert!(
        err.contains("input-empty.txt") && err.contains("lists no packages"),
        "{err}"
    );
}
