"""The command line's commands as functions: login, build (pushing with the stored
credentials), inspect and copy; and the `conda-docker` command of the wheel."""

import json
import os
import subprocess
import sys

import pytest

import conda_docker
from conftest import CHANNEL, DEMO_BASE, PASSWORD, USER


def test_login_build_push_inspect_copy(auth_registry, isolated_home, tmp_path, docker):
    stored = conda_docker.login(auth_registry, USER, PASSWORD)
    assert stored.endswith("config.json")
    assert auth_registry in json.loads((isolated_home / "config.json").read_text())["auths"]
    with pytest.raises(conda_docker.Unauthorized):
        conda_docker.login(auth_registry, USER, "wrong")

    events = []
    ref = f"{auth_registry}/team/demo:1"
    result = conda_docker.build(
        ["bzip2"],
        channels=[str(CHANNEL)],
        base=f"docker-archive:{DEMO_BASE}",
        images=[ref],
        outputs=[f"docker://{ref}", str(tmp_path / "demo.tar")],
        env={"GREETING": "hello"},
        labels={"team": "data"},
        progress=lambda event, message: events.append(event),
    )
    assert result.image_id.startswith("sha256:")
    pushed = result.digests[f"docker://{ref}"]
    assert pushed.startswith(f"{ref}@sha256:")
    assert result.outputs[str(tmp_path / "demo.tar")] == result.image_id
    names = [r["name"] for r in result.records]
    assert "bzip2" in names and all("sha256" in r for r in result.records)
    assert {"read_base.started", "solve.finished", "install.finished", "write.started"} <= set(events)

    report = conda_docker.inspect(ref)
    packages = [p for layer in report["layers"] for p in layer["packages"]]
    assert any(p.startswith("bzip2-") for p in packages)
    assert "GREETING=hello" in report["config"]["config"]["Env"]
    assert report["config"]["config"]["Labels"]["team"] == "data"
    by_digest = conda_docker.inspect(pushed)
    assert by_digest["layers"] == report["layers"]

    # The seed's pull_image finds the stored login as the CLI does.
    pulled = conda_docker.pull_image(f"{auth_registry}/team/demo", "1")
    assert [l.diff_id for l in pulled.layers] == [l.diff_id for l in result.image.layers]

    copied = conda_docker.copy(ref, f"oci:{tmp_path / 'layout'}:1")
    assert copied["image_id"] == result.image_id
    again = conda_docker.copy(f"oci:{tmp_path / 'layout'}:1", f"docker://{auth_registry}/team/copy:1", creds=(USER, PASSWORD))
    assert again["pushed"].startswith(f"{auth_registry}/team/copy:1@sha256:")

    docker("load", "-i", str(tmp_path / "demo.tar"))
    out = docker("run", "--rm", "--network=none", ref, "sh", "-c", "echo $GREETING; echo hi | bzip2 | bzip2 -d")
    assert out == "hello\nhi\n"


def test_build_without_outputs_gives_images(tmp_path):
    result = conda_docker.build("bzip2", channels=[str(CHANNEL)], base="scratch", layering_strategy="single",
                                lock_output=tmp_path / "lock.txt")
    image = result.image
    assert image.reference == "conda-docker:latest"
    assert len(image.layers) == 1 and result.image_ids == [result.image_id]
    assert "@EXPLICIT" in (tmp_path / "lock.txt").read_text()
    assert image.write_file(tmp_path / "out.tar") == result.image_id


def test_console_script_runs_the_cli(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "conda-docker")
    version = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("conda-docker ")
    built = subprocess.run(
        [script, "-q", "build", "-b", f"docker-archive:{DEMO_BASE}", "-c", str(CHANNEL), "-o",
         str(tmp_path / "cli.tar"), "bzip2"],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    report = subprocess.run([script, "inspect", "--json", f"docker-archive:{tmp_path / 'cli.tar'}"],
                            capture_output=True, text=True)
    assert report.returncode == 0
    assert json.loads(report.stdout) == conda_docker.inspect(f"docker-archive:{tmp_path / 'cli.tar'}")
    assert image_id.startswith("sha256:")
    bad = subprocess.run([script, "build", "--no-such-flag"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such-flag" in bad.stderr
    missing = subprocess.run([script, "inspect", f"docker-archive:{tmp_path / 'nope.tar'}"], capture_output=True, text=True)
    assert missing.returncode == 1 and "caused by" in missing.stderr


def test_seed_build_from_an_environment_file(tmp_path):
    from conda_docker.conda import build_docker_environment

    env_file = tmp_path / "environment.yml"
    env_file.write_text(
        f"name: from-file\nchannels:\n  - {CHANNEL}\ndependencies:\n  - bzip2\nvariables:\n  MODE: file\n"
    )
    result = build_docker_environment(
        base_image="scratch",
        output_image="from-file:1",
        environment_file=env_file,
        output_filename=tmp_path / "env.tar",
        layering_strategy="single",
    )
    report = conda_docker.inspect(f"docker-archive:{tmp_path / 'env.tar'}")
    assert "MODE=file" in report["config"]["config"]["Env"]
    assert "CONDA_DEFAULT_ENV=from-file" in report["config"]["config"]["Env"]
    assert [r["name"] for r in result.records if r["name"] == "bzip2"] == ["bzip2"]
    assert report["layers"][0]["packages"] and len(report["layers"]) == 1


def test_readme_quick_start(tmp_path, monkeypatch):
    """The README's Python quick start, as written there, gives the image the cargo-built
    command gives for the same build."""
    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    after = readme.split("From Python (", 1)[1]
    code = after.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "demo").symlink_to(REPO / "demo")
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(compile(code, "README.md", "exec"), {"print": printed.append})
    assert (tmp_path / "demo.tar").is_file()
    (image_id,) = printed
    assert image_id.startswith("sha256:")
    out = subprocess.run(
        [os.environ["CONDA_DOCKER_BIN"], "build", "-b", "docker-archive:demo/base.tar",
         "-c", "demo/channel", "--channel-name", "conda-forge=demo/channel",
         "-i", "demo:1", "-o", "cargo.tar", "bzip2", "zstd"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == image_id


def test_dry_run_sbom_dir_and_the_file_names_the_image(tmp_path):
    """The environment file's name names the image; `dry_run` plans without writing; `sbom_dir`
    gets the SBOMs the image holds."""
    env_file = tmp_path / "environment.yml"
    env_file.write_text(f"name: Named-Env\nchannels:\n  - {CHANNEL}\ndependencies:\n  - bzip2\n")
    plans = conda_docker.build(file=env_file, base="scratch", outputs=tmp_path / "never.tar", dry_run=True)
    assert [p["platform"] for p in plans] == ["linux-64"]
    assert any("bzip2" in " ".join(layer["packages"]) for layer in plans[0]["groups"])
    assert not (tmp_path / "never.tar").exists()

    result = conda_docker.build(file=env_file, base="scratch", sbom_dir=tmp_path / "sboms",
                                outputs=tmp_path / "out.tar")
    assert result.image.reference == "named-env:latest"
    assert result.outputs == {str(tmp_path / "out.tar"): result.image_id}
    spdx = json.loads((tmp_path / "sboms" / "sbom.spdx.json").read_text())
    assert any(p["name"] == "bzip2" for p in spdx["packages"])
    assert (tmp_path / "sboms" / "sbom.cdx.json").is_file()

    bad = tmp_path / "sboms-file"
    bad.write_text("")
    with pytest.raises(conda_docker.CondaDockerError, match="sbom"):
        conda_docker.build(file=env_file, base="scratch", sbom_dir=bad, outputs=tmp_path / "o2.tar")
    assert not (tmp_path / "o2.tar").exists()


def test_a_pip_section_from_find_links(tmp_path):
    """`find_links` reaches the resolver of an environment file's `pip:` section: the wheel is
    installed over the host's python (packaged as conda's) and pinned in the lockfile written."""
    repo = CHANNEL.parents[1]
    channel = tmp_path / "python-channel"
    subprocess.run(["/usr/bin/python3", str(repo / "tests/common/host_python.py"), str(channel)],
                   check=True, capture_output=True)
    env_file = tmp_path / "environment.yml"
    env_file.write_text("name: pip-env\ndependencies:\n  - python\n  - pip:\n"
                        "    - --no-index\n    - jmespath==1.1.0\n")
    lock = tmp_path / "lock.yml"
    result = conda_docker.build(file=env_file, channels=[channel], base="scratch",
                                find_links=repo / "tests/fixtures/pypi/wheels", lock_output=lock,
                                outputs=tmp_path / "out.tar")
    assert result.outputs == {str(tmp_path / "out.tar"): result.image_id}
    text = lock.read_text()
    assert "manager: pip" in text and "name: jmespath" in text and "1.1.0" in text

    # Without the wheels' directory nothing is found, and nothing is written.
    with pytest.raises(conda_docker.CondaDockerError, match="jmespath"):
        conda_docker.build(file=env_file, channels=[channel], base="scratch",
                           outputs=tmp_path / "o2.tar")
    assert not (tmp_path / "o2.tar").exists()


def test_add_puts_host_files_on_top_in_a_layer_of_their_own(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    (app / "local.env").write_text("TOKEN=secret\n")
    (app / ".dockerignore").write_text("*.env\n")
    plain = conda_docker.build("bzip2", channels=[str(CHANNEL)], base=f"docker-archive:{DEMO_BASE}",
                               outputs=[str(tmp_path / "plain.tar")])
    added = conda_docker.build("bzip2", channels=[str(CHANNEL)], base=f"docker-archive:{DEMO_BASE}",
                               add=[f"{app}:/srv/app"], outputs=[str(tmp_path / "app.tar")])
    # Top first: the environment's layers are the same, the files' layer is on top.
    plain_ids = [layer.diff_id for layer in plain.image.layers]
    added_ids = [layer.diff_id for layer in added.image.layers]
    assert added_ids[1:] == plain_ids and added.image.layers[0].created_by == "conda-docker: --add files at /srv/app"
    with pytest.raises(Exception, match="add"):
        conda_docker.build("bzip2", channels=[str(CHANNEL)], base=f"docker-archive:{DEMO_BASE}",
                           add=["app-without-dest"])
