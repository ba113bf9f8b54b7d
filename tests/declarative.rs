//! Declarative inputs map 1:1 to images: environment.yml, lockfiles, existing environments,
//! image settings, a non-root user, and their errors.

mod common;

use common::ok;

use std::path::Path;
use std::process::Output;

use common::tools::{Docker, Podman};
use common::{channel, conda_docker, glibc_base, run_ok, tempdir};

fn base() -> String {
    format!("docker-archive:{}", glibc_base().display())
}

fn build(args: &[&str]) -> Output {
    conda_docker()
        .arg("build")
        .args(["-b", &base()])
        .args(args)
        .output()
        .unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_environment_file_names_the_image_and_sets_its_variables() {
    let test = "an_environment_file_names_the_image_and_sets_its_variables";
    let dir = tempdir();
    let env = write(
        dir.path(),
        "environment.yml",
        &format!(
            "name: demo-env\nchannels:\n  - {}\ndependencies:\n  - bzip2\nvariables:\n  GREETING: hello\n\
             conda-docker:\n  labels: {{team: data}}\n  env: {{FROM_FILE: file, OVERRIDDEN: file}}\n",
            channel().display()
        ),
    );
    let out = dir.path().join("env.tar");
    ok(build(&[
        "-f",
        &env,
        "-o",
        out.to_str().unwrap(),
        "--env",
        "OVERRIDDEN=cli",
        "--label",
        "tier=gold",
    ]));
    let Some(docker) = Docker::get(test) else {
        return;
    };
    run_ok(docker.cmd().args(["load", "-i", out.to_str().unwrap()]));
    // Named after the environment; the program runs with no shell or entrypoint script.
    let help = docker
        .cmd()
        .args([
            "run",
            "--rm",
            "--network=none",
            "demo-env",
            "bzip2",
            "--help",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stderr).contains("bzip2, a block-sorting file compressor")
    );
    let env_out = run_ok(
        docker
            .cmd()
            .args(["run", "--rm", "--network=none", "demo-env", "env"]),
    );
    for expected in [
        "GREETING=hello",
        "CONDA_DEFAULT_ENV=demo-env",
        "CONDA_PREFIX=/opt/conda",
        "FROM_FILE=file",
        "OVERRIDDEN=cli",
    ] {
        assert!(
            env_out.lines().any(|l| l == expected),
            "{expected} missing in:\n{env_out}"
        );
    }
    let labels =
        run_ok(
            docker
                .cmd()
                .args(["inspect", "-f", "{{json .Config.Labels}}", "demo-env"]),
        );
    assert!(
        labels.contains("\"team\":\"data\"") && labels.contains("\"tier\":\"gold\""),
        "{labels}"
    );
    assert!(
        labels.contains("org.conda-docker.packages.digest"),
        "{labels}"
    );
    let list = run_ok(docker.cmd().args([
        "run",
        "--rm",
        "--network=none",
        "demo-env",
        "cat",
        "/opt/conda/conda-meta/explicit.txt",
    ]));
    assert!(
        list.contains("@EXPLICIT") && list.contains("bzip2-1.0.8-h4bc722e_7.conda#sha256:"),
        "{list}"
    );
}

#[test]
fn solve_and_every_lockfile_give_one_image() {
    let dir = tempdir();
    let d = dir.path();
    let channel = channel();
    let ch = channel.to_str().unwrap();
    let out = |n: &str| d.join(n).display().to_string();
    let explicit = out("explicit.txt");
    let conda_lock = out("conda-lock.yml");
    let solved = ok(build(&[
        "-c",
        ch,
        "-o",
        &out("solved.tar"),
        "--lock-output",
        &explicit,
        "bzip2",
        "zstd",
    ]));
    ok(build(&[
        "-c",
        ch,
        "-o",
        &out("solved2.tar"),
        "--lock-output",
        &conda_lock,
        "bzip2",
        "zstd",
    ]));
    assert!(
        std::fs::read_to_string(&explicit)
            .unwrap()
            .contains("@EXPLICIT")
    );

    // pixi.lock, converted from the conda-lock file with rattler_lock (as `pixi import` would).
    let document = rattler_conda_lock::Document::from_path(&conda_lock).unwrap();
    let pixi =
        rattler_lock::LockFile::from_conda_lock_document(&document, &Default::default()).unwrap();
    let pixi_lock = d.join("pixi.lock");
    pixi.to_path(&pixi_lock).unwrap();
    // For file:// channels the subdir cannot be derived from a URL path, and rattler_lock does not
    // write it; pixi lockfiles of local channels carry it, so add it as pixi would.
    let text = std::fs::read_to_string(&pixi_lock).unwrap();
    let (head, packages) = text.split_once("\npackages:\n").unwrap();
    let packages: String = packages
        .lines()
        .map(|l| match l.strip_prefix("- conda: ") {
            Some(url) => format!(
                "{l}\n  subdir: {}\n",
                if url.contains("/noarch/") {
                    "noarch"
                } else {
                    "linux-64"
                }
            ),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&pixi_lock, format!("{head}\npackages:\n{packages}")).unwrap();

    for (what, file) in [
        ("explicit", explicit.as_str()),
        ("conda-lock", conda_lock.as_str()),
        ("pixi", pixi_lock.to_str().unwrap()),
    ] {
        let id = ok(build(&["-f", file, "-o", &out(&format!("{what}.tar"))]));
        assert_eq!(id, solved, "{what} gave another image");
    }
}

#[test]
fn lockfile_errors_name_the_file_and_what_it_has() {
    let dir = tempdir();
    let d = dir.path();
    let explicit = d.join("lock.txt").display().to_string();
    let conda_lock = d.join("conda-lock.yml").display().to_string();
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-o",
        &d.join("x.tar").display().to_string(),
        "--lock-output",
        &explicit,
        "bzip2",
    ]));
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-o",
        &d.join("y.tar").display().to_string(),
        "--lock-output",
        &conda_lock,
        "bzip2",
    ]));
    std::fs::remove_file(d.join("x.tar")).unwrap();
    std::fs::remove_file(d.join("y.tar")).unwrap();
    let out = d.join("out.tar");
    let o = out.to_str().unwrap();

    let err = failed(build(&[
        "-f",
        &conda_lock,
        "--platform",
        "linux-aarch64",
        "-o",
        o,
    ]));
    assert!(
        err.contains("conda-lock.yml")
            && err.contains("no platform linux-aarch64")
            && err.contains("linux-64"),
        "{err}"
    );

    // The lock's hash no longer matches the channel: refused.
    let text = std::fs::read_to_string(&explicit).unwrap();
    let tampered = write(
        d,
        "tampered.txt",
        &text.replace(
            "#sha256:5ced96500d945fb286c9c838e54fa759aa04a7129c59800f0846b4335cee770d",
            &format!("#sha256:{}", "1".repeat(64)),
        ),
    );
    let err = failed(build(&[
        "-f",
        &tampered,
        "-c",
        channel().to_str().unwrap(),
        "-o",
        o,
    ]));
    assert!(
        err.contains("bzip2-1.0.8-h4bc722e_7.conda")
            && err.contains(&format!("where the record says {}", "1".repeat(64))),
        "{err}"
    );

    let broken = write(
        d,
        "environment.yml",
        "name: x\ndependencies:\n  - bzip2\n  - [unclosed\n",
    );
    let err = failed(build(&["-f", &broken, "-o", o]));
    assert!(
        err.contains("environment.yml") && err.contains("line 4"),
        "{err}"
    );

    let pip = write(
        d,
        "pip.yml",
        "dependencies:\n  - bzip2\n  - pip:\n    - requests\n",
    );
    let err = failed(build(&[
        "-f",
        &pip,
        "-c",
        channel().to_str().unwrap(),
        "-o",
        o,
    ]));
    assert!(
        err.contains("pip: needs python in the environment"),
        "{err}"
    );

    let err = failed(build(&["-n", "no-such-env-anywhere", "-o", o]));
    assert!(
        err.contains("no-such-env-anywhere")
            && err.contains("looked in")
            && err.contains(".conda/envs"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn an_existing_environment_is_rebuilt_from_its_records() {
    let dir = tempdir();
    let d = dir.path();
    let first = d.join("first.tar");
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-o",
        first.to_str().unwrap(),
        "bzip2",
        "zstd",
    ]));
    // Unpack the environment conda-docker installed, as a prefix on disk.
    let root = d.join("root");
    std::fs::create_dir(&root).unwrap();
    let listing = run_ok(
        std::process::Command::new("tar")
            .arg("xf")
            .arg(&first)
            .arg("-C")
            .arg(&root)
            .arg("manifest.json"),
    );
    let _ = listing;
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        run_ok(
            std::process::Command::new("tar")
                .arg("xf")
                .arg(&first)
                .arg("-C")
                .arg(&root)
                .arg(layer.as_str().unwrap()),
        );
        run_ok(
            std::process::Command::new("tar")
                .arg("xf")
                .arg(root.join(layer.as_str().unwrap()))
                .arg("-C")
                .arg(&root),
        );
    }
    let prefix = root.join("opt/conda");
    assert!(prefix.join("conda-meta").is_dir());
    // Variables set on the environment (`conda env config vars set APP_MODE=production`).
    std::fs::write(
        prefix.join("conda-meta/state"),
        r#"{"env_vars": {"APP_MODE": "production"}}"#,
    )
    .unwrap();
    let again = d.join("again.tar");
    ok(build(&[
        "-p",
        prefix.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]));
    let packages = |tar: &Path| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(&ok(conda_docker()
            .args([
                "inspect",
                "--json",
                &format!("docker-archive:{}", tar.display()),
            ])
            .output()
            .unwrap()))
        .unwrap();
        let mut all: Vec<String> = report["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| {
                l["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
            })
            .collect();
        all.sort();
        all
    };
    let expected = packages(&first);
    assert!(expected.iter().any(|p| p.starts_with("zstd-")));
    assert_eq!(packages(&again), expected);
    let env = image_env(&again);
    assert!(env.contains(&"APP_MODE=production".to_string()), "{env:?}");
}

/// The `Env` of the image in a docker-archive, via `conda-docker inspect --json`.
fn image_env(archive: &Path) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_str(&ok(conda_docker()
        .args([
            "inspect",
            "--json",
            &format!("docker-archive:{}", archive.display()),
        ])
        .output()
        .unwrap()))
    .unwrap();
    serde_json::from_value(report["config"]["config"]["Env"].clone()).unwrap()
}

#[test]
fn variables_packages_declare_are_set_and_the_command_line_wins() {
    let dir = tempdir();
    let d = dir.path();
    // A package declaring activation variables, as conda packages do in env_vars.d.
    let pkg_channel = d.join("pkg-channel");
    run_ok(
        std::process::Command::new("/usr/bin/python3")
            .arg(common::repo().join("tests/common/conda_package.py"))
            .arg(&pkg_channel)
            .args([
                "demo-data",
                "1.0",
                r#"etc/conda/env_vars.d/demo-data.json={"DEMO_DATA": "/opt/conda/share/demo", "DEMO_LEVEL": 3}"#,
                "share/demo/README=hello",
            ]),
    );
    let out = d.join("vars.tar");
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-c",
        pkg_channel.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--env",
        "DEMO_LEVEL=9",
        "demo-data",
        "bzip2",
    ]));
    let env = image_env(&out);
    assert!(
        env.contains(&"DEMO_DATA=/opt/conda/share/demo".to_string()),
        "{env:?}"
    );
    assert!(env.contains(&"DEMO_LEVEL=9".to_string()), "{env:?}");
    assert!(!env.contains(&"DEMO_LEVEL=3".to_string()), "{env:?}");
}

#[test]
fn a_non_root_user_runs_the_program() {
    let test = "a_non_root_user_runs_the_program";
    let dir = tempdir();
    let out = dir.path().join("user.tar");
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-i",
        "as-app:1",
        "-o",
        out.to_str().unwrap(),
        "--user",
        "app:1000",
        "--writable-prefix",
        "bzip2",
    ]));
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i", out.to_str().unwrap()]));
        let got = run_ok(docker.cmd().args(["run", "--rm", "--network=none", "as-app:1", "sh", "-c", "id -u; id -g; echo $HOME; echo hi | bzip2 | bzip2 -d; touch /opt/conda/written && echo writable"]));
        assert_eq!(got, "1000\n1000\n/home/app\nhi\nwritable\n");
        let passwd = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "as-app:1",
            "cat",
            "/etc/passwd",
        ]));
        assert!(
            passwd.starts_with("root:x:0:0:") && passwd.contains("app:x:1000:1000:"),
            "{passwd}"
        );
    }
    if let Some(podman) = Podman::new(test) {
        run_ok(podman.cmd().args(["load", "-i", out.to_str().unwrap()]));
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "docker.io/library/as-app:1",
            "id",
            "-u",
        ]));
        assert_eq!(got, "1000\n");
    }
}

#[test]
fn virtual_packages_come_from_the_base_and_can_be_overridden() {
    let dir = tempdir();
    let o = dir.path().join("vp.tar").display().to_string();
    // bzip2 needs __glibc >=2.17: the host glibc of the test base satisfies it, 2.12 does not.
    ok(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-o",
        &o,
        "bzip2",
    ]));
    std::fs::remove_file(&o).unwrap();
    let err = failed(build(&[
        "-c",
        channel().to_str().unwrap(),
        "-o",
        &o,
        "--virtual-package",
        "__glibc=2.12",
        "bzip2",
    ]));
    assert!(err.contains("__glibc"), "{err}");
    let err = failed(
        conda_docker()
            .env("CONDA_OVERRIDE_GLIBC", "2.12")
            .arg("build")
            .args([
                "-b",
                &base(),
                "-c",
                channel().to_str().unwrap(),
                "-o",
                &o,
                "bzip2",
            ])
            .output()
            .unwrap(),
    );
    assert!(err.contains("__glibc"), "{err}");
    // On scratch (no libc to read) the default is 2.17, which bzip2 accepts.
    ok(conda_docker()
        .args([
            "build",
            "-b",
            "scratch",
            "-c",
            channel().to_str().unwrap(),
            "-o",
            &o,
            "bzip2",
        ])
        .output()
        .unwrap());
}
