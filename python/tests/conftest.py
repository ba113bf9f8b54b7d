"""The real tools the tests drive: CNCF distribution registries on loopback ports (one open, one
with htpasswd auth), a Docker engine on a private socket, and the cargo-built `conda-docker`.

A missing tool fails the run under CI=true and skips the test elsewhere, as the Rust tests do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_BASE = REPO / "demo" / "base.tar"
CHANNEL = REPO / "demo" / "channel"
USER, PASSWORD = "alice", "s3cret"


def _need(tool: str) -> str:
    found = shutil.which(tool) or next(
        (str(Path(d) / tool) for d in ("/usr/sbin", "/sbin", "/usr/bin") if (Path(d) / tool).is_file()), None
    )
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"`{tool}` is required but not installed (run .ci/run)")
    pytest.skip(f"`{tool}` is not installed (run .ci/run to install it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Logins and credentials go to a private Docker config, never the user's."""
    home = tmp_path_factory.mktemp("docker-config")
    old = os.environ.get("DOCKER_CONFIG")
    os.environ["DOCKER_CONFIG"] = str(home)
    for var in ("REGISTRY_AUTH_FILE", "CONDA_DOCKER_REGISTRY_USERNAME", "CONDA_DOCKER_REGISTRY_PASSWORD"):
        os.environ.pop(var, None)
    yield home
    if old is None:
        os.environ.pop("DOCKER_CONFIG", None)
    else:
        os.environ["DOCKER_CONFIG"] = old


@pytest.fixture(scope="session")
def cli() -> str:
    """The cargo-built `conda-docker` (CONDA_DOCKER_BIN, else the target dir's, else PATH's)."""
    candidates = [os.environ.get("CONDA_DOCKER_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    candidates.append(str(Path(target) / "debug" / "conda-docker"))
    candidates.append(shutil.which("conda-docker"))
    for c in candidates:
        if c and Path(c).is_file():
            return c
    pytest.fail("no conda-docker binary: run `cargo build` or set CONDA_DOCKER_BIN")


class Registry:
    def __init__(self, htpasswd: bool):
        binary = _need("docker-registry")
        self.dir = Path(tempfile.mkdtemp(prefix="cd-py-registry-"))
        self.addr = f"127.0.0.1:{_free_port()}"
        auth = ""
        if htpasswd:
            _need("htpasswd")
            out = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True)
            (self.dir / "htpasswd").write_bytes(out.stdout)
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {self.dir / 'htpasswd'}\n"
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {self.dir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.addr}\n{auth}"
        )
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([binary, "serve", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1)
                return
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start: {(self.dir / 'registry.log').read_text()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def registry():
    r = Registry(htpasswd=False)
    yield r.addr
    r.stop()


@pytest.fixture(scope="session")
def auth_registry():
    r = Registry(htpasswd=True)
    yield r.addr
    r.stop()


@pytest.fixture(scope="session")
def bases(registry, cli):
    """The seed README's base images, in the local registry: `frolvlad/alpine-glibc` is the
    bundled glibc + busybox base; `continuumio/miniconda3` that base with bzip2 built on it
    (so removing its top layer, the environment's files, leaves a runnable image)."""
    glibc = f"{registry}/frolvlad/alpine-glibc"
    subprocess.run([cli, "-q", "copy", f"docker-archive:{DEMO_BASE}", f"docker://{glibc}:latest"], check=True)
    miniconda = f"{registry}/continuumio/miniconda3"
    subprocess.run(
        [
            cli, "-q", "build", "-b", f"docker-archive:{DEMO_BASE}", "-c", str(CHANNEL),
            "-i", "miniconda3:latest", "-o", f"docker://{miniconda}:latest", "bzip2",
        ],
        check=True,
    )
    return {"glibc": glibc, "miniconda": miniconda}


class Docker:
    """A Docker engine on a private socket, as tests/common/tools.rs starts it."""

    def __init__(self):
        _need("dockerd")
        _need("docker")
        self.dir = Path(tempfile.mkdtemp(prefix="cd-py-dockerd-", dir="/tmp"))
        sock = self.dir / "docker.sock"
        config = {
            "data-root": str(self.dir / "data"),
            "exec-root": str(self.dir / "exec"),
            "pidfile": str(self.dir / "exec" / "dockerd.pid"),
            "hosts": [f"unix://{sock}"],
            "iptables": False,
            "ip6tables": False,
            "bridge": "none",
            "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 20000, "Soft": 20000}},
        }
        (self.dir / "daemon.json").write_text(json.dumps(config))
        self.log = open(self.dir / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", str(self.dir / "daemon.json")], stdout=self.log, stderr=self.log
        )
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
        deadline = time.time() + 60
        while time.time() < deadline:
            if subprocess.run(["docker", "version"], env=self.env, capture_output=True).returncode == 0:
                return
            time.sleep(0.25)
        raise RuntimeError(f"dockerd did not start: {(self.dir / 'dockerd.log').read_text()}")

    def __call__(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True)
        self.last_stderr = out.stderr
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker():
    d = Docker()
    yield d
    d.stop()
