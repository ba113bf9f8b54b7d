"""Each exception class, raised by a real failure, with the library's message and causes."""

import io
import json
import socket
import tarfile

import pytest

import conda_docker
from conda_docker import (
    CondaDockerError,
    InvalidImage,
    NotFound,
    RegistryError,
    SolveError,
    Unauthorized,
)
from conftest import CHANNEL, DEMO_BASE


def test_hierarchy():
    for cls in (SolveError, RegistryError, Unauthorized, NotFound, InvalidImage, conda_docker.Cancelled):
        assert issubclass(cls, CondaDockerError)
    assert issubclass(Unauthorized, RegistryError) and issubclass(NotFound, RegistryError)
    assert issubclass(conda_docker.Cancelled, KeyboardInterrupt)


def test_unsatisfiable_specs_raise_solve_error():
    with pytest.raises(SolveError, match="no-such-package"):
        conda_docker.build(["no-such-package-anywhere"], channels=[str(CHANNEL)], base="scratch")


def test_invalid_spec_raises_solve_error():
    with pytest.raises(SolveError, match="invalid package spec"):
        conda_docker.build(["bzip2 >>= 1"], channels=[str(CHANNEL)], base="scratch")


def test_missing_repository_raises_not_found(registry):
    with pytest.raises(NotFound) as e:
        conda_docker.pull_image(f"{registry}/no/such-image", "latest")
    assert "caused by" in str(e.value)


def test_missing_tag_in_archive_raises_not_found():
    with pytest.raises(NotFound, match="it holds"):
        conda_docker.Image.from_file(f"docker-archive:{DEMO_BASE}:nope:missing")


def test_registry_without_credentials_raises_unauthorized(auth_registry):
    with pytest.raises(Unauthorized):
        conda_docker.pull_image(f"{auth_registry}/team/app", "1")
    with pytest.raises(Unauthorized):
        conda_docker.pull_image(f"{auth_registry}/team/app", "1", creds=("alice", "wrong"))


def test_unreachable_registry_raises_registry_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError) as e:
        conda_docker.pull_image(f"127.0.0.1:{port}/app", "1")
    assert not isinstance(e.value, (Unauthorized, NotFound))


def test_corrupt_archive_raises_invalid_image(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        data = json.dumps([{"Config": "missing.json", "RepoTags": ["bad:1"], "Layers": ["nope.tar"]}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidImage):
        conda_docker.Image.from_file(bad)


def test_unusable_output_raises_condadocker_error(tmp_path):
    [image] = conda_docker.Image.from_file(DEMO_BASE)
    with pytest.raises(CondaDockerError, match="is a directory"):
        image.write_file(tmp_path)
    with pytest.raises(ValueError):
        image.write_file(tmp_path / "x.tar", version="v2")


def test_path_escaping_the_image_is_refused():
    image = conda_docker.Image("x", "1")
    with pytest.raises(CondaDockerError, match=r"\.\."):
        image.add_layer_contents({"../etc/passwd": b"no"})


def test_a_bad_setting_is_named_by_its_keyword():
    # The Python user is told about `timeout=` and `cache_from=`, never the command line's flags.
    with pytest.raises(CondaDockerError) as e:
        conda_docker.build(["bzip2"], channels=[str(CHANNEL)], base="scratch", timeout=-1)
    assert str(e.value).startswith("timeout:"), str(e.value)
    assert "--timeout" not in str(e.value)
    with pytest.raises(CondaDockerError) as e:
        conda_docker.build(["bzip2"], channels=[str(CHANNEL)], base="scratch", cache_from="Not A Ref")
    assert str(e.value).startswith("cache_from:"), str(e.value)
