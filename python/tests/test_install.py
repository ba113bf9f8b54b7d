"""The wheel installs with pip where no Rust toolchain is on PATH, and works there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_pip_install_without_cargo(tmp_path):
    wheel = os.environ.get("CONDA_DOCKER_WHEEL")
    if not wheel:
        if os.environ.get("CI") == "true":
            pytest.fail("CONDA_DOCKER_WHEEL is not set (run python/run-tests)")
        pytest.skip("CONDA_DOCKER_WHEEL is not set (run python/run-tests)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    path = f"{venv / 'bin'}:/usr/bin:/bin"
    env = {"PATH": path, "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert shutil.which("cargo", path=path) is None and shutil.which("rustc", path=path) is None
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", wheel], check=True, env=env)
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import conda_docker, conda_docker.registry.client, conda_docker.docker.base, conda_docker.conda;"
         "i = conda_docker.Image('x', '1'); i.add_layer_contents({'a': b'b'}); print(len(i.layers))"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert probe.returncode == 0 and probe.stdout == "1\n", probe.stderr
    cli = subprocess.run([str(venv / "bin" / "conda-docker"), "--help"], capture_output=True, text=True, env=env)
    assert cli.returncode == 0 and "build" in cli.stdout
    assert Path(venv / "lib").exists()
