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

/// The files of every layer of a docker-archive, by path (the top layer wins).
fn image_files(archive: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let read = |bytes: &[u8]| {
        let mut files = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(bytes).entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(entry.path().unwrap().display().to_string(), data);
        }
        files
    };
    let outer = read(&std::fs::read(archive).unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&outer["manifest.json"]).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        files.extend(read(&outer[layer.as_str().unwrap()]));
    }
    files
}

#[test]
fn noarch_python_packages_are_linked_the_conda_way_and_run() {
    let test = "noarch_python_packages_are_linked_the_conda_way_and_run";
    if common::tools::require("python3", test).is_none() {
        return;
    }
    let dir = tempdir();
    let (python_channel, xy) = common::host_python_channel(dir.path());
    let out = dir.path().join("py.tar");
    let noarch = common::repo().join("tests/fixtures/channel-noarch");
    // A prefix other than the default, so the entry point's shebang shows it was written for it.
    let site = format!("srv/env/lib/python{xy}/site-packages");
    build(
        out.to_str().unwrap(),
        "demo-python:1",
        &[
            "-c",
            noarch.to_str().unwrap(),
            "-c",
            python_channel.to_str().unwrap(),
            "--target-prefix",
            "/srv/env",
            "--env",
            "LD_LIBRARY_PATH=/srv/env/lib",
        ],
        &["tqdm", "idna"],
    );

    let files = image_files(&out);
    assert!(files.contains_key(&format!("{site}/idna/__init__.py")));
    assert!(files.contains_key(&format!("{site}/tqdm/cli.py")));
    assert!(
        !files.keys().any(|p| p.starts_with("srv/env/site-packages")),
        "noarch files left at their in-package paths"
    );
    let entry_point = String::from_utf8_lossy(&files["srv/env/bin/tqdm"]).into_owned();
    assert!(
        entry_point.starts_with(&format!("#!/srv/env/bin/python{xy}\n")),
        "{entry_point}"
    );
    assert!(
        entry_point.contains("from tqdm.cli import main"),
        "{entry_point}"
    );
    let record = files
        .iter()
        .find(|(p, _)| p.starts_with("srv/env/conda-meta/tqdm-"))
        .expect("tqdm's conda-meta record");
    let record: serde_json::Value = serde_json::from_slice(record.1).unwrap();
    let listed: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(listed.contains(&"bin/tqdm"), "{listed:?}");
    assert!(
        listed.contains(&format!("lib/python{xy}/site-packages/tqdm/cli.py").as_str()),
        "{listed:?}"
    );

    // The entry point runs with the image's Python and finds the linked packages.
    let script = "tqdm --version && python -c \
                  \"import idna; print(idna.__file__); print(idna.encode('ü.example').decode())\"";
    let expect = |got: String| {
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(
            lines,
            [
                "4.67.1",
                &format!("/{site}/idna/__init__.py"),
                "xn--tda.example"
            ],
            "{got}"
        );
    };
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i"]).arg(&out));
        expect(run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "demo-python:1",
            "sh",
            "-c",
            script,
        ])));
    }
    if let Some(podman) = Podman::new(test) {
        run_ok(podman.cmd().args(["load", "-i"]).arg(&out));
        expect(run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "docker.io/library/demo-python:1",
            "sh",
            "-c",
            script,
        ])));
    }
}
