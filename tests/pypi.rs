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

/// The `pip` entries of [`WHEELS`], each with its sha256.
fn hashed_entries() -> Vec<String> {
    WHEELS
        .iter()
        .map(|w| pip_entry(w, Some(&sha256(&wheel(w)))))
        .collect()
}

/// The host's python as a conda package, locked (conda-lock) with `pip` entries appended.
struct Fixture {
    dir: tempfile::TempDir,
    python_channel: PathBuf,
    conda_lock: String,
}

impl Fixture {
    /// The fixture, or `None` (the test skipped, or failed under CI) without a python.
    fn new(test: &str) -> Option<Self> {
        common::tools::require("python3", test)?;
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
        Some(Self {
            conda_lock: std::fs::read_to_string(&lock).unwrap(),
            dir,
            python_channel,
        })
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
        // Named, so that records and SBOMs hold no path of this machine.
        .arg("--channel-name")
        .arg(format!("conda-forge={}", python_channel.display()))
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

/// Loads the docker-archive `out` into Docker and into podman (each where it is installed) and
/// calls `check` with a function that runs a command in `image` under that engine, with no
/// network, and returns its output.
fn each_engine(test: &str, out: &Path, image: &str, check: impl Fn(&dyn Fn(&[&str]) -> String)) {
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["load", "-i"]).arg(out));
        check(&|args| {
            run_ok(
                docker
                    .cmd()
                    .args(["run", "--rm", "--network=none", image])
                    .args(args),
            )
        });
    }
    if let Some(podman) = Podman::new(test) {
        run_ok(podman.cmd().args(["load", "-i"]).arg(out));
        let name = format!("docker.io/library/{image}");
        check(&|args| {
            run_ok(
                podman
                    .cmd()
                    .args(["run", "--rm", "--network=none", &name])
                    .args(args),
            )
        });
    }
}

/// `conda-docker inspect --json` of a docker-archive.
fn inspect(archive: &Path) -> serde_json::Value {
    serde_json::from_str(&run_ok(
        conda_docker()
            .args(["inspect", "--json"])
            .arg(format!("docker-archive:{}", archive.display())),
    ))
    .unwrap()
}

/// The PyPI distributions `inspect` names in the layers of `report`, sorted.
fn pypi_in_layers(report: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["pypi"].as_array().into_iter().flatten())
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The diff_ids of a docker-archive's image, bottom first.
fn diff_ids(archive: &Path) -> Vec<String> {
    let report = inspect(archive);
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
    let Some(f) = Fixture::new(test) else {
        return;
    };
    let entries = hashed_entries();
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
    let report = inspect(&out);
    assert_eq!(
        pypi_in_layers(&report),
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
    each_engine(test, &out, "demo-pypi:1", |run| {
        assert_eq!(run(&["python", "-c", script]), expected);
        // Console scripts run straight from PATH, their shebang the env's python.
        assert!(run(&["dotenv", "--version"]).contains("1.2.4"));
        // A `.data/scripts` script, its `#!python` rewritten to the env's.
        assert_eq!(
            run(&["sh", "-c", "echo '{\"a\": 7}' | jp.py a"]).trim(),
            "7"
        );
    });
}

#[test]
fn a_changed_or_missing_hash_is_refused_and_leaves_nothing() {
    let Some(f) = Fixture::new("a_changed_or_missing_hash_is_refused") else {
        return;
    };
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
    let Some(f) = Fixture::new("an_sdist_in_a_lockfile_is_refused") else {
        return;
    };
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

/// A PEP 503 simple index as many users host one: static pages over a directory of wheels,
/// served by Python's `http.server` on a loopback port; stopped when dropped.
struct SimpleIndex {
    /// Serves until dropped.
    _server: common::http_server::StaticServer,
    url: String,
}

impl SimpleIndex {
    /// Serves `files` (paths of wheels or sdists) under `root`.
    fn serve(root: &Path, files: &[PathBuf]) -> Self {
        use std::collections::BTreeMap;
        let mut projects: BTreeMap<String, Vec<String>> = BTreeMap::new();
        std::fs::create_dir_all(root.join("files")).unwrap();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(f, root.join("files").join(&name)).unwrap();
            let project = name
                .split('-')
                .next()
                .unwrap()
                .to_lowercase()
                .replace(['_', '.'], "-");
            projects.entry(project).or_default().push(format!(
                "<a href=\"../../files/{name}#sha256={}\">{name}</a><br/>",
                sha256(f)
            ));
        }
        let mut listing = String::from("<!DOCTYPE html><html><body>\n");
        for (project, links) in &projects {
            let dir = root.join("simple").join(project);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("index.html"),
                format!(
                    "<!DOCTYPE html><html><body>\n{}\n</body></html>\n",
                    links.join("\n")
                ),
            )
            .unwrap();
            listing.push_str(&format!("<a href=\"{project}/\">{project}</a>\n"));
        }
        std::fs::write(root.join("simple/index.html"), listing + "</body></html>\n").unwrap();
        let log = root.with_extension("access.log");
        let server = common::http_server::StaticServer::start(root, &log, "pypi")
            .expect("python3 serves the index");
        Self {
            url: server.url("simple"),
            _server: server,
        }
    }
}

/// A conda `click` 8.5.1 package (the real wheel's files in site-packages, `INSTALLER` conda,
/// as conda-forge's is), in a channel of its own under `dir`.
fn conda_click_channel(dir: &Path) -> PathBuf {
    let channel = dir.join("click-channel");
    let script = "import sys, zipfile\n\
                  sys.path.insert(0, sys.argv[3])\n\
                  import conda_package\n\
                  wheel = zipfile.ZipFile(sys.argv[2])\n\
                  sp = 'lib/python3.11/site-packages/'\n\
                  files = {sp + n: wheel.read(n) for n in wheel.namelist() if not n.endswith('/')}\n\
                  files[sp + 'click-8.5.1.dist-info/INSTALLER'] = b'conda\\n'\n\
                  conda_package.write_channel(sys.argv[1], 'click', '8.5.1', files, depends=['python'])";
    run_ok(
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(&channel)
            .arg(wheel("click-8.5.1"))
            .arg(common::repo().join("tests/common")),
    );
    channel
}

/// The host python, the conda `click`, a simple index over the vendored wheels (and an
/// sdist-only project), and an `environment.yml` with a `pip:` section.
struct PipFixture {
    dir: tempfile::TempDir,
    python_channel: PathBuf,
    click_channel: PathBuf,
    index: SimpleIndex,
}

impl PipFixture {
    /// The fixture, or `None` (the test skipped, or failed under CI) without a python.
    fn new(test: &str) -> Option<Self> {
        common::tools::require("python3", test)?;
        let dir = tempdir();
        let (python_channel, xy) = common::host_python_channel(dir.path());
        assert_eq!(xy, "3.11", "the markupsafe fixture is a cp311 wheel");
        let click_channel = conda_click_channel(dir.path());
        let sdist = dir.path().join("onlysrc-1.0.tar.gz");
        std::fs::write(
            &sdist,
            b"not built: conda-docker never runs an sdist's code",
        )
        .unwrap();
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(common::repo().join("tests/fixtures/pypi/wheels"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
        files.push(sdist);
        let index = SimpleIndex::serve(&dir.path().join("index"), &files);
        Some(Self {
            dir,
            python_channel,
            click_channel,
            index,
        })
    }

    /// Writes `environment.yml` (`name` in the fixture's directory) with `conda` dependencies
    /// and `pip` lines.
    fn env(&self, name: &str, conda: &[&str], pip: &[&str]) -> PathBuf {
        let mut text = format!("name: {}\ndependencies:\n", name.trim_end_matches(".yml"));
        for c in conda {
            text.push_str(&format!("  - {c}\n"));
        }
        text.push_str("  - pip:\n");
        for p in pip {
            text.push_str(&format!("    - {p}\n"));
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `conda-docker build -f env` into `out` with both channels.
    fn build(&self, env: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
        self_build(&self.python_channel)
            .arg("-c")
            .arg(&self.click_channel)
            .arg("-f")
            .arg(env)
            .arg("-o")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    }
}

#[test]
fn a_pip_section_is_resolved_on_a_simple_index_installed_and_runs() {
    let test = "a_pip_section_is_resolved_on_a_simple_index_installed_and_runs";
    let Some(f) = PipFixture::new(test) else {
        return;
    };
    // `-r` relative to the environment file, an index URL line, extras and markers.
    std::fs::create_dir_all(f.dir.path().join("reqs")).unwrap();
    std::fs::write(
        f.dir.path().join("reqs/more.txt"),
        "jmespath>=1.0\nmarkupsafe==3.0.4 ; platform_machine == \"x86_64\"\n\
         typing_inspect ; python_version >= \"3.8\"\nnever-installed ; python_version < \"3\"\n",
    )
    .unwrap();
    let index_line = format!("--index-url {}", f.index.url);
    let env = f.env(
        "demo-pip.yml",
        &["python", "click"],
        &[&index_line, "python-dotenv[cli]", "-r reqs/more.txt"],
    );
    let out = f.dir.path().join("pip.tar");
    let relock = f.dir.path().join("relock.yml");
    let id = ok(f.build(&env, &out, &["--lock-output", relock.to_str().unwrap()]));
    // Built twice, one image.
    let again = f.dir.path().join("again.tar");
    assert_eq!(ok(f.build(&env, &again, &[])), id);
    // A dry run lists the wheels, now in the wheel cache, and writes nothing.
    let never = f.dir.path().join("never.tar");
    let plans: serde_json::Value =
        serde_json::from_str(&ok(f.build(&env, &never, &["--dry-run", "--json"]))).unwrap();
    let mut planned: Vec<String> = plans[0]["pypi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            assert_eq!(w["cached"], true, "{w}");
            format!(
                "{}=={}",
                w["name"].as_str().unwrap(),
                w["version"].as_str().unwrap()
            )
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            "jmespath==1.1.0",
            "markupsafe==3.0.4",
            "mypy-extensions==1.2.0",
            "python-dotenv==1.2.4",
            "typing-extensions==4.16.0",
            "typing-inspect==0.9.0"
        ]
    );
    assert!(!never.exists());
    // The lockfile written pins what was resolved, and builds the same image.
    let relocked = std::fs::read_to_string(&relock).unwrap();
    assert_eq!(relocked.matches("manager: pip").count(), 6, "{relocked}");
    // Its packages' and wheels' layers are the same; CONDA_DEFAULT_ENV and the SBOM (in the
    // top layer) differ, as a lockfile names no environment.
    let from_lock = f.dir.path().join("from-lock.tar");
    ok(self_build(&f.python_channel)
        .arg("-c")
        .arg(&f.click_channel)
        .arg("-f")
        .arg(&relock)
        .arg("-o")
        .arg(&from_lock)
        .output()
        .unwrap());
    let (locked, resolved) = (diff_ids(&from_lock), diff_ids(&out));
    assert_eq!(locked[..locked.len() - 1], resolved[..resolved.len() - 1]);

    // inspect names the PyPI distributions; conda's click is not among them.
    let report = inspect(&out);
    assert_eq!(
        pypi_in_layers(&report),
        [
            "jmespath-1.1.0",
            "markupsafe-3.0.4",
            "mypy-extensions-1.2.0",
            "python-dotenv-1.2.4",
            "typing-extensions-4.16.0",
            "typing-inspect-0.9.0",
        ]
    );

    // A second environment with one of them shares its layer.
    let small_env = f.env("small-pip.yml", &["python"], &[&index_line, "jmespath"]);
    let small = f.dir.path().join("small.tar");
    ok(f.build(&small_env, &small, &[]));
    let (all, some) = (diff_ids(&out), diff_ids(&small));
    let shared: Vec<&String> = some.iter().filter(|d| all.contains(d)).collect();
    // The base's layer, python's and jmespath's.
    assert!(shared.len() >= 3, "shared {shared:?} of {some:?}");

    let script = "import importlib.metadata as m, click, dotenv, jmespath, markupsafe, typing_inspect\n\
                  for d in ('python-dotenv', 'jmespath', 'MarkupSafe', 'typing_inspect', 'mypy_extensions', 'click'):\n    \
                  dist = m.distribution(d)\n    \
                  print(d, dist.version, dist.read_text('INSTALLER').strip())\n\
                  print(jmespath.__version__, markupsafe.escape('<b>'), click.__file__.count('site-packages'))";
    let expected = "python-dotenv 1.2.4 conda-docker\njmespath 1.1.0 conda-docker\n\
                    MarkupSafe 3.0.4 conda-docker\ntyping_inspect 0.9.0 conda-docker\n\
                    mypy_extensions 1.2.0 conda-docker\nclick 8.5.1 conda\n\
                    1.1.0 &lt;b&gt; 1\n";
    each_engine(test, &out, "demo-pip:latest", |run| {
        assert_eq!(run(&["python", "-c", script]), expected);
        // The console script, straight from PATH (no shell), with conda's click under it.
        assert!(run(&["dotenv", "--version"]).contains("1.2.4"));
        let listed = run(&[
            "python",
            "-c",
            "import importlib.metadata as m; print(sorted(d.metadata['Name'] for d in m.distributions()))",
        ]);
        assert_eq!(
            listed.trim(),
            "['MarkupSafe', 'click', 'jmespath', 'mypy_extensions', 'python-dotenv', \
             'typing-inspect', 'typing_extensions']"
        );
    });
}

#[test]
fn pip_requirements_that_cannot_be_installed_are_refused_and_leave_nothing() {
    let test = "pip_requirements_that_cannot_be_installed_are_refused_and_leave_nothing";
    let Some(f) = PipFixture::new(test) else {
        return;
    };
    let outputs = tempdir();
    let out = outputs.path().join("out.tar");
    let refused = |env: &Path, extra: &[&str], env_vars: &[(&str, &str)]| -> String {
        let mut cmd = self_build(&f.python_channel);
        cmd.arg("-c")
            .arg(&f.click_channel)
            .arg("-f")
            .arg(env)
            .arg("-o")
            .arg(&out)
            .args(extra);
        for (k, v) in env_vars {
            cmd.env(k, v);
        }
        let failed = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&failed.stderr).into_owned();
        assert!(!failed.status.success(), "built: {err}");
        common::assert_no_output(outputs.path());
        err
    };
    let by_flag = ["--pypi-index-url", f.index.url.as_str()];

    // Another version of what a conda package provides: an error naming both.
    let env = f.env("input-pin.yml", &["python", "click"], &["click==8.1.0"]);
    let err = refused(&env, &[], &[("PIP_INDEX_URL", f.index.url.as_str())]);
    assert!(
        err.contains("click==8.1.0") && err.contains("8.5.1") && err.contains("conda package"),
        "{err}"
    );
    // Only an sdist: named, and not built (the index named as uv users name it).
    let env = f.env("input-sdist.yml", &["python"], &["onlysrc"]);
    let err = refused(&env, &[], &[("UV_DEFAULT_INDEX", f.index.url.as_str())]);
    assert!(
        err.contains("onlysrc") && err.contains("only source distributions"),
        "{err}"
    );
    // Nothing satisfies it: the resolver's explanation.
    let env = f.env("input-unsat.yml", &["python"], &["jmespath>=99"]);
    let err = refused(&env, &by_flag, &[]);
    assert!(err.contains("jmespath") && err.contains(">=99"), "{err}");
    // An index that cannot be reached.
    let env = f.env("input-unreachable.yml", &["python"], &["jmespath"]);
    let err = refused(
        &env,
        &["--pypi-index-url", "http://127.0.0.1:9/simple"],
        &[],
    );
    assert!(
        err.contains("cannot reach") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    // An extra index (uv's named `UV_INDEX`) that cannot be reached, behind one that can.
    let err = refused(
        &env,
        &by_flag,
        &[("UV_INDEX", "down=http://127.0.0.1:9/simple")],
    );
    assert!(
        err.contains("cannot reach") && err.contains("127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn a_pip_section_resolves_on_the_real_pypi() {
    let test = "a_pip_section_resolves_on_the_real_pypi";
    if common::tools::require("python3", test).is_none() {
        return;
    }
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&("pypi.org", 443))
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(5)).is_ok()
        });
    // `.ci/run` itself installs from pypi.org, so a CI run that cannot reach it fails here
    // rather than passing untested; elsewhere the test is a counted skip.
    if !reachable && common::tools::skip::<()>(test, "pypi.org:443 is not reachable").is_none() {
        return;
    }
    let dir = tempdir();
    let (python_channel, _) = common::host_python_channel(dir.path());
    let env = dir.path().join("real-pypi.yml");
    std::fs::write(
        &env,
        "name: real-pypi\ndependencies:\n  - python\n  - pip:\n    - six==1.16.0\n",
    )
    .unwrap();
    let out = dir.path().join("real.tar");
    ok(self_build(&python_channel)
        .arg("-f")
        .arg(&env)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap());
    let report = inspect(&out);
    assert_eq!(report["pypi"][0]["name"], "six", "{report}");
    assert_eq!(report["pypi"][0]["version"], "1.16.0");
    each_engine(test, &out, "real-pypi:latest", |run| {
        let got = run(&["python", "-c", "import six; print(six.__version__)"]);
        assert_eq!(got.trim(), "1.16.0");
    });
}

#[test]
fn a_pixi_lock_with_pypi_entries_builds_the_exact_wheels() {
    let test = "a_pixi_lock_with_pypi_entries_builds_the_exact_wheels";
    let Some(f) = Fixture::new(test) else {
        return;
    };
    let entries = hashed_entries();
    let conda_lock = f.lock("input-lock.yml", &entries);
    let from_conda_lock = f.dir.path().join("conda-lock.tar");
    let id = ok(f.build(&conda_lock, &from_conda_lock, &[]));

    // The same packages as pixi writes them (converted with rattler_lock, as `pixi import`
    // would; pixi records a local channel's subdir, which the conversion cannot know).
    let document = rattler_conda_lock::Document::from_path(&conda_lock).unwrap();
    let pixi =
        rattler_lock::LockFile::from_conda_lock_document(&document, &Default::default()).unwrap();
    let pixi_lock = f.dir.path().join("pixi.lock");
    pixi.to_path(&pixi_lock).unwrap();
    let text = std::fs::read_to_string(&pixi_lock).unwrap();
    let (head, packages) = text.split_once("\npackages:\n").unwrap();
    let packages: String = packages
        .lines()
        .map(|l| {
            if l.starts_with("- conda: ") {
                format!("{l}\n  subdir: linux-64\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let text = format!("{head}\npackages:\n{packages}");
    assert_eq!(text.matches("- pypi: ").count(), 8, "{text}");
    std::fs::write(&pixi_lock, &text).unwrap();
    let from_pixi = f.dir.path().join("pixi.tar");
    assert_eq!(ok(f.build(&pixi_lock, &from_pixi, &[])), id);

    // A wheel whose hash was changed in the lockfile is refused, and nothing is written.
    let click = sha256(&wheel("click-8.5.1"));
    let forged = format!("{}0", &click[..63]);
    assert!(text.contains(&click));
    let forged_lock = f.dir.path().join("input-forged-pixi.lock");
    std::fs::write(&forged_lock, text.replace(&click, &forged)).unwrap();
    let outputs = tempdir();
    let failed = f.build(&forged_lock, &outputs.path().join("out.tar"), &[]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && err.contains("click-8.5.1") && err.contains(&forged),
        "{err}"
    );
    common::assert_no_output(outputs.path());
}

#[test]
fn a_cancelled_resolution_is_a_cancelled_build() {
    use conda_docker::builder::Error;
    use conda_docker::builder::pypi::PypiError;
    use conda_docker::pypi::resolve;
    // The resolver's cancellation carries the one `Cancelled`; the build finds it among the
    // sources, as it finds the image side's.
    let resolution = resolve::Error::Cancelled(conda_docker::Cancelled);
    let build = Error::from(PypiError::Resolve(resolution));
    assert!(build.is_cancelled(), "{build}");
    assert!(Error::from(conda_docker::image::Error::Cancelled).is_cancelled());
    assert!(!Error::from(PypiError::NoPython).is_cancelled());
}

#[test]
fn an_http_index_linking_host_files_is_refused_without_reading_them() {
    let test = "an_http_index_linking_host_files_is_refused_without_reading_them";
    let Some(f) = PipFixture::new(test) else {
        return;
    };
    // On the host: a real wheel (linked with its right hash) and a FIFO, which a read would
    // block on (linked with a wrong hash, and with the wheel's).
    let host = f.dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let wheel = host.join("secret-1.0-py3-none-any.whl");
    std::fs::copy(
        common::repo().join("tests/fixtures/pypi/wheels/jmespath-1.1.0-py3-none-any.whl"),
        &wheel,
    )
    .unwrap();
    let right = sha256(&wheel);
    let fifo = host.join("shadow");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let wrong = "ab".repeat(32);
    let page = f.dir.path().join("index/simple/secret");
    std::fs::create_dir_all(&page).unwrap();
    let link = |path: &Path, hash: &str, name: &str| {
        format!(
            "<a href=\"file://{}#sha256={hash}\">{name}</a>",
            path.display()
        )
    };
    let links = [
        link(&wheel, &right, "secret-1.0-py3-none-any.whl"),
        link(&fifo, &wrong, "secret-2.0-py3-none-any.whl"),
        link(&fifo, &right, "secret-3.0-py3-none-any.whl"),
    ];
    std::fs::write(page.join("index.html"), links.join("\n")).unwrap();

    let env = f.env("hostile.yml", &["python"], &["secret"]);
    let out = f.dir.path().join("hostile.tar");
    let child = self_build(&f.python_channel)
        .arg("-c")
        .arg(&f.click_channel)
        .arg("-f")
        .arg(&env)
        .arg("-o")
        .arg(&out)
        .args(["--pypi-index-url", f.index.url.as_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The watchdog: a build that opened the FIFO would never end.
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let done = match rx.recv_timeout(std::time::Duration::from_secs(300)) {
        Ok(done) => done.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill").arg(&pid).status();
            panic!("the build hung: it opened the host's FIFO");
        }
    };
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success(), "built: {err}");
    assert!(
        err.contains("secret") && err.contains("3 link(s) not followed"),
        "{err}"
    );
    assert!(!err.contains(&right) && !err.contains(&wrong), "{err}");
    assert!(!out.exists());
}
