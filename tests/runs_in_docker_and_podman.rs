//! Images built by conda-docker load and run in a real Docker engine and in podman.

mod common;

use common::tools::{Docker, Podman};
use common::{build, run_ok, tempdir};

#[test]
fn bzip2_runs_under_docker_and_podman() {
    let dir = tempdir();
    let out = dir.path().join("demo.tar");
    build(out.to_str().unwrap(), "demo-bzip2:1", &[], &["bzip2"]);

    if let Some(docker) = Docker::get("bzip2_runs_under_docker_and_podman") {
        run_ok(docker.cmd().args(["load", "-i"]).arg(&out));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "demo-bzip2:1",
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }
    if let Some(podman) = Podman::new("bzip2_runs_under_docker_and_podman") {
        run_ok(podman.cmd().args(["load", "-i"]).arg(&out));
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "docker.io/library/demo-bzip2:1",
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }
}

#[test]
fn prefix_placeholders_are_rewritten() {
    let dir = tempdir();
    let out = dir.path().join("tools.tar");
    build(
        out.to_str().unwrap(),
        "demo-tools:1",
        &[],
        &["openssl", "ncurses"],
    );
    let Some(docker) = Docker::get("prefix_placeholders_are_rewritten") else {
        return;
    };
    run_ok(docker.cmd().args(["load", "-i"]).arg(&out));
    // libcrypto.so.3 carries a binary prefix placeholder (its OPENSSLDIR).
    let version = run_ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        "demo-tools:1",
        "openssl",
        "version",
        "-d",
    ]));
    assert!(
        version.contains("OPENSSLDIR: \"/opt/conda/ssl\""),
        "{version}"
    );
    // ncurses finds its terminfo database only through its rewritten paths.
    let xterm = run_ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        "-e",
        "TERMINFO=",
        "demo-tools:1",
        "infocmp",
        "xterm",
    ]));
    assert!(xterm.contains("xterm|"), "{xterm}");
}
