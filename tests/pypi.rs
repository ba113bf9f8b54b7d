//! PyPI wheels in the image: a lockfile's pip entries installed exactly (real wheels from PyPI,
//! vendored in tests/fixtures/pypi), run under Docker and podman, checked by hash, cached and
//! shared as layers.

mod common;

use std::path::{Path, PathBuf};

use common::tools::{Docker, Podman};
use common::{conda_docker, glibc_base, run_ok, tempdir};
use sha2::Digest as _;

/// The vendored wheel whose file name starts with `prefix`.
fn wheel(prefix: &str) -> PathBuf {
    let dir = common::repo().join("tests/fixtures/pypi/wheels");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{prefix}-"))
        })
        .unwrap_or_else(|| panic!("no {prefix} wheel in {}", dir.display()))
}

fn sha256(path: &Path) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A conda-lock `manager: pip` entry for the wheel `prefix` (`name-version`), with `hash` as
/// its sha256 (`None`: no hash).
fn pip_entry(prefix: &str, hash: Option<&str>) -> String {
    let path = wheel(prefix);
    let (name, version) = prefix.rsplit_once('-').unwrap();
    let hash = match hash {
        Some(h) => format!("  hash:\n    sha256: {h}\n"),
        None => "  hash: {}\n".to_string(),
    };
    format!(
        "- category: main\n  dependencies: {{}}\n{hash}  manager: pip\n  name: {name}\n  \
         optional: false\n  platform: linux-64\n  url: file://{}\n  version: \"{version}\"\n",
        path.display()
    )
}

const WHEELS: [&str; 4] = [
    "python_dotenv-1.2.4",
    "click-8.5.1",
    "jmespath-1.1.0",
    "markupsafe-3.0.4",
];

/// The host's python as a conda package, locked (conda-lock) with `pip` entries appended.
struct Fixture {
    dir: tempfile::TempDir,
    python_channel: PathBuf,
    conda_lock: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempdir();
        let (python_channel, xy) = common::host_python_channel(dir.path());
        assert_eq!(xy, "3.11", "the markupsafe fixture is a cp311 wheel");
        let lock = dir.path().join("python-lock.yml");
        let out = dir.path().join("python.tar");
        run_ok(self_build(&python_channel).args(["-o"]).arg(&out).args([
            "--lock-output",
            lock.to_str().unwrap(),
            "python",
        ]));
        std::fs::remove_file(&out).unwrap();
        Self {
            conda_lock: std::fs::read_to_string(&lock).unwrap(),
            dir,
            python_channel,
        }
    }

    /// Writes the conda lock plus `entries` as `name` and returns its path.
    fn lock(&self, name: &str, entries: &[String]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("{}{}", self.conda_lock, entries.concat())).unwrap();
        path
    }

    /// `conda-docker build` from the lockfile `lock` into `out`.
    fn build(&self, lock: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
        self_build(&self.python_channel)
            .args(["-i", "demo-pypi:1", "-f"])
            .arg(lock)
            .arg("-o")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    }
}

/// `conda-docker build` on the glibc base with the host python's channel.
fn self_build(python_channel: &Path) -> std::process::Command {
    let mut cmd = conda_docker();
    cmd.args(["build", "-q", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("-c")
        .arg(python_channel)
        .args(["--env", "LD_LIBRARY_PATH=/opt/conda/lib"]);
    cmd
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "conda-docker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The diff_ids of a docker-archive's image, bottom first.
fn diff_ids(archive: &Path) -> Vec<String> {
    let report = run_ok(
        conda_docker()
            .args(["inspect", "--json"])
            .arg(format!("docker-archive:{}", archive.display())),
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    report["config"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn locked_wheels_are_installed_as_pip_installs_them_and_run() {
    let test = "locked_wheels_are_installed_as_pip_installs_them_and_run";
    if common::tools::require("python3", test).is_none() {
        return;
    }
    let f = Fixture::new();
    let entries: Vec<String> = WHEELS
        .iter()
        .map(|w| pip_entry(w, Some(&sha256(&wheel(w)))))
        .collect();
    let lock = f.lock("input-lock.yml", &entries);
    let out = f.dir.path().join("pypi.tar");
    let relock = f.dir.path().join("relock.yml");
    let sboms = f.dir.path().join("sboms");
    let id = ok(f.build(
        &lock,
        &out,
        &[
            "--lock-output",
            relock.to_str().unwrap(),
            "--sbom-dir",
            sboms.to_str().unwrap(),
        ],
    ));
    // The lockfile written beside it pins the wheels too, and builds the same image.
    let relocked = std::fs::read_to_string(&relock).unwrap();
    assert_eq!(relocked.matches("manager: pip").count(), 4, "{relocked}");
    let from_relock = f.dir.path().join("from-relock.tar");
    assert_eq!(ok(f.build(&relock, &from_relock, &[])), id);
    // The SBOMs list them by purl and hash, and name no path of this machine.
    let spdx = std::fs::read_to_string(sboms.join("sbom.spdx.json")).unwrap();
    let cdx = std::fs::read_to_string(sboms.join("sbom.cdx.json")).unwrap();
    for text in [&spdx, &cdx] {
        assert!(text.contains("pkg:pypi/click@8.5.1"), "{text}");
        assert!(text.contains("pkg:pypi/markupsafe@3.0.4"), "{text}");
        assert!(text.contains(&sha256(&wheel("click-8.5.1"))));
        assert!(!text.contains("file://"), "a host path in the SBOM");
    }
    // conda's explicit format cannot hold them: refused before anything is built.
    let outputs = tempdir();
    let failed = f.build(
        &lock,
        &outputs.path().join("out.tar"),
        &[
            "--lock-output",
            outputs.path().join("lock.txt").to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("explicit format holds no PyPI"),
        "{err}"
    );
    common::assert_no_output(outputs.path());

    // The same lockfile gives the same image, and a second image with fewer wheels shares the
    // layers of those it has.
    let again = f.dir.path().join("again.tar");
    assert_eq!(ok(f.build(&lock, &again, &[])), id);
    let fewer = f.lock("input-fewer.yml", &entries[1..2]);
    let small = f.dir.path().join("small.tar");
    ok(f.build(&fewer, &small, &[]));
    let (all, some) = (diff_ids(&out), diff_ids(&small));
    let shared: Vec<&String> = some.iter().filter(|d| all.contains(d)).collect();
    // The base's layer, python's and click's.
    assert!(shared.len() >= 3, "shared {shared:?} of {some:?}");

    // inspect names each distribution in its layer.
    let report: serde_json::Value = serde_json::from_str(&run_ok(
        conda_docker()
            .args(["inspect", "--json"])
            .arg(format!("docker-archive:{}", out.display())),
    ))
    .unwrap();
    let mut in_layers: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["pypi"].as_array().into_iter().flatten())
        .map(|d| d.as_str().unwrap())
        .collect();
    in_layers.sort();
    assert_eq!(
        in_layers,
        [
            "click-8.5.1",
            "jmespath-1.1.0",
            "markupsafe-3.0.4",
            "python-dotenv-1.2.4"
        ]
    );
    assert_eq!(report["pypi"][0]["installer"], "conda-docker");
    let table = run_ok(
        conda_docker()
            .arg("inspect")
            .arg(format!("docker-archive:{}", out.display())),
    );
    assert!(table.contains("pypi:click-8.5.1"), "{table}");

    let script = "import importlib.metadata as m, click, dotenv, jmespath, markupsafe\n\
                  for d in ('click', 'python-dotenv', 'jmespath', 'MarkupSafe'):\n    \
                  dist = m.distribution(d)\n    \
                  print(d, dist.version, dist.read_text('INSTALLER').strip())\n\
                  print(markupsafe.escape('<b>'), markupsafe._speedups.__file__.endswith('.so'))\n\
                  print(jmespath.search('a.b', {'a': {'b': 42}}))";
    let expected = "click 8.5.1 conda-docker\npython-dotenv 1.2.4 conda-docker\n\
                    jmespath 1.1.0 conda-docker\nMarkupSafe 3.0.4 conda-docker\n\
                    &lt;b&gt; True\n42\n";
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i"]).arg(&out));
        let run = |args: &[&str]| {
            run_ok(
                docker
                    .cmd()
                    .args(["run", "--rm", "--network=none", "demo-pypi:1"])
                    .args(args),
            )
        };
        assert_eq!(run(&["python", "-c", script]), expected);
        // Console scripts run straight from PATH, their shebang the env's python.
        assert!(run(&["dotenv", "--version"]).contains("1.2.4"));
        // A `.data/scripts` script, its `#!python` rewritten to the env's.
        assert_eq!(
            run(&["sh", "-c", "echo '{\"a\": 7}' | jp.py a"]).trim(),
            "7"
        );
    }
    if let Some(podman) = Podman::new(test) {
        run_ok(podman.cmd().args(["load", "-i"]).arg(&out));
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "docker.io/library/demo-pypi:1",
            "python",
            "-c",
            script,
        ]));
        assert_eq!(got, expected);
    }
}

#[test]
fn a_changed_or_missing_hash_is_refused_and_leaves_nothing() {
    if common::tools::require("python3", "a_changed_or_missing_hash_is_refused").is_none() {
        return;
    }
    let f = Fixture::new();
    let forged = "0".repeat(64);
    let lock = f.lock(
        "input-forged.yml",
        &[pip_entry("click-8.5.1", Some(&forged))],
    );
    let outputs = tempdir();
    let out = outputs.path().join("out.tar");
    let failed = f.build(&lock, &out, &[]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("click-8.5.1-py3-none-any.whl") && err.contains(&forged),
        "{err}"
    );
    common::assert_no_output(outputs.path());

    let unhashed = f.lock("input-unhashed.yml", &[pip_entry("click-8.5.1", None)]);
    let failed = f.build(&unhashed, &out, &[]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("click") && err.contains("--allow-unhashed-pypi"),
        "{err}"
    );
    common::assert_no_output(outputs.path());
    ok(f.build(&unhashed, &out, &["--allow-unhashed-pypi"]));
}

#[test]
fn an_sdist_in_a_lockfile_or_wheels_without_python_are_refused() {
    if common::tools::require("python3", "an_sdist_in_a_lockfile_is_refused").is_none() {
        return;
    }
    let f = Fixture::new();
    let sdist = "- category: main\n  dependencies: {}\n  hash:\n    sha256: \
                 0000000000000000000000000000000000000000000000000000000000000000\n  manager: pip\n  \
                 name: click\n  optional: false\n  platform: linux-64\n  url: \
                 https://files.example/click-8.5.1.tar.gz\n  version: \"8.5.1\"\n";
    let lock = f.lock("input-sdist.yml", &[sdist.to_string()]);
    let outputs = tempdir();
    let failed = f.build(&lock, &outputs.path().join("out.tar"), &[]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("click") && err.contains("not a wheel") && err.contains("sdists"),
        "{err}"
    );
    common::assert_no_output(outputs.path());

    // Wheels with no python to run them.
    let bzip2_lock = outputs.path().join("input-bzip2.yml");
    let image = outputs.path().join("input-bzip2.tar");
    common::build(
        image.to_str().unwrap(),
        "bzip2:1",
        &["--lock-output", bzip2_lock.to_str().unwrap()],
        &["bzip2"],
    );
    let text = std::fs::read_to_string(&bzip2_lock).unwrap();
    std::fs::write(&bzip2_lock, text + &pip_entry("click-8.5.1", None)).unwrap();
    let failed = conda_docker()
        .args(["build", "-q", "-b", "scratch", "-c"])
        .arg(common::channel())
        .arg("-f")
        .arg(&bzip2_lock)
        .arg("-o")
        .arg(outputs.path().join("out.tar"))
        .arg("--allow-unhashed-pypi")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("pip: needs python in the environment"),
        "{err}"
    );
    common::assert_no_output(outputs.path());
}
