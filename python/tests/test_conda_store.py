"""conda-store's call sequence on the seed's 0.1.x API (``conda_docker.conda``), run exactly as
conda-store wrote it, with no conda anywhere: the environment is a prefix extracted from an
image this project built from the bundled channel, and Docker loads and runs what it gives."""

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import CHANNEL, DEMO_BASE

CONDA_FORGE = "https://conda.anaconda.org/conda-forge"


def action_generate_conda_docker(conda_prefix, default_docker_image, container_registry, output_image_name, output_image_tag):
    # conda-store's conda_store_server/_internal/action/generate_conda_docker.py, as it was
    # before conda-store disabled it (PR #667), with the layering the issue names.
    from conda_docker.conda import (
        build_docker_environment_image,
        conda_info,
        fetch_precs,
        find_user_conda,
        precs_from_environment_prefix,
    )

    user_conda = find_user_conda()
    info = conda_info(user_conda)
    download_dir = info["pkgs_dirs"][0]
    precs = precs_from_environment_prefix(str(conda_prefix), download_dir, user_conda)
    records = fetch_precs(download_dir, precs)
    base_image = container_registry.pull_image(default_docker_image)
    image = build_docker_environment_image(
        base_image=base_image,
        output_image=f"{output_image_name}:{output_image_tag}",
        records=records,
        default_prefix=info["env_vars"]["CONDA_ROOT"],
        download_dir=download_dir,
        user_conda=user_conda,
        channels_remap=info.get("channels_remap", []),
        layering_strategy="layered",
    )
    return image


def seed_get_final_url(channels_remap, url):
    # The seed's conda_docker.conda.get_final_url (0.1.2), the oracle of the remap test.
    for entry in channels_remap:
        src = entry["src"]
        dst = entry["dest"]
        if url.startswith(src):
            return url.replace(src, dst)
    return url


@pytest.fixture
def no_conda(tmp_path, monkeypatch):
    """No CONDA_EXE, no conda on PATH, a private cache; the config file mirrors conda-forge
    to the bundled channel (the extracted environment's records name conda-forge)."""
    monkeypatch.delenv("CONDA_EXE", raising=False)
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not (Path(d) / "conda").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    monkeypatch.setenv("CONDA_DOCKER_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "config.toml"
    config.write_text(f'[mirrors]\n"{CONDA_FORGE}" = ["{CHANNEL}"]\n')
    monkeypatch.setenv("CONDA_DOCKER_CONFIG", str(config))
    return tmp_path


@pytest.fixture(scope="module")
def extracted_prefix(cli, tmp_path_factory):
    """/opt/conda of an image built from the bundled channel (recorded as conda-forge),
    extracted from its docker-archive, layer by layer."""
    tmp = tmp_path_factory.mktemp("conda-store-env")
    archive = tmp / "env.tar"
    subprocess.run(
        [cli, "-q", "build", "-b", f"docker-archive:{DEMO_BASE}", "-c", str(CHANNEL),
         "--channel-name", f"conda-forge={CHANNEL}", "--cache-dir", str(tmp / "cache"),
         "-i", "store-env:1", "-o", str(archive), "bzip2"],
        check=True,
    )
    root = tmp / "root"
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(name).read())) as layer:
                members = [m for m in layer.getmembers() if m.name.startswith("opt/conda/") and (m.isfile() or m.isdir() or m.issym())]
                for m in members:
                    m.mode |= stat.S_IWUSR
                layer.extractall(root, members=members)
    prefix = root / "opt" / "conda"
    assert sorted(p.name.rsplit("-", 2)[0] for p in (prefix / "conda-meta").glob("*.json"))
    return prefix


def _layer_records(image):
    """The conda-meta records the image's layers hold, read from each layer.content."""
    found = {}
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(layer.content)) as tar:
            for m in tar.getmembers():
                if m.isfile() and "/conda-meta/" in m.name and m.name.endswith(".json"):
                    found[m.name] = json.load(tar.extractfile(m))
    return found


def test_conda_store_sequence_builds_an_image_docker_runs(no_conda, extracted_prefix, bases, registry, docker, tmp_path):
    from conda_docker.conda import conda_info, find_user_conda
    from conda_docker.registry import Registry

    assert find_user_conda() == "conda"
    info = conda_info(find_user_conda())
    assert info["pkgs_dirs"] == [str(tmp_path / "cache" / "pkgs")]
    assert info["env_vars"]["CONDA_ROOT"] == "/opt/conda"
    assert info["channels_remap"] == [{"src": CHANNEL.as_uri(), "dest": CONDA_FORGE}]

    image = action_generate_conda_docker(
        conda_prefix=extracted_prefix,
        default_docker_image="frolvlad/alpine-glibc:latest",
        container_registry=Registry(f"http://{registry}"),
        output_image_name="conda-store-env",
        output_image_tag="b1",
    )
    assert "conda" not in sys.modules
    # fetch_precs put the packages in the package cache, extracted.
    assert any(p.is_dir() and (p / "info" / "index.json").is_file() for p in (tmp_path / "cache" / "pkgs").iterdir())

    image.write_file(tmp_path / "store.tar")
    docker("load", "-i", str(tmp_path / "store.tar"))
    run = ["run", "--rm", "--network=none", "conda-store-env:b1"]
    assert docker(*run, "sh", "-c", "echo hi | /opt/conda/bin/bzip2 | /opt/conda/bin/bzip2 -d") == "hi\n"

    # layers[0] is the top layer: the config lists diff_ids bottom first.
    diff_ids = json.loads(docker("inspect", "conda-store-env:b1"))[0]["RootFS"]["Layers"]
    layers = image.layers
    assert len(layers) > 2
    hashed = ["sha256:" + hashlib.sha256(layer.content).hexdigest() for layer in layers]
    assert hashed == diff_ids[::-1]
    for layer in layers:
        assert layer.checksum == hashlib.sha256(layer.content).hexdigest()
        assert layer.size == len(layer.content)
        assert gzip.decompress(layer.compressed_content) == layer.content
        assert layer.compressed_checksum == hashlib.sha256(layer.compressed_content).hexdigest()
        assert layer.compressed_size == len(layer.compressed_content)

    # The image records the environment's packages as the environment did.
    wanted = {p.name: json.loads(p.read_text())["url"] for p in (extracted_prefix / "conda-meta").glob("*.json")}
    got = {m.rsplit("/", 1)[1]: r["url"] for m, r in _layer_records(image).items()}
    assert got == wanted
    assert all(url.startswith(CONDA_FORGE + "/") for url in got.values())


def test_channels_remap_rewrites_recorded_urls_as_get_final_url(no_conda, tmp_path, monkeypatch):
    from conda_docker.conda import build_docker_environment_image, fetch_precs, find_precs, find_user_conda, precs_from_package_specs
    from conda_docker.docker.base import Image

    monkeypatch.delenv("CONDA_DOCKER_CONFIG")
    user_conda = find_user_conda()
    download_dir = str(tmp_path / "downloads")
    precs = precs_from_package_specs(["bzip2"], "mamba (ignored)", download_dir, user_conda, channels=[str(CHANNEL)])
    assert [p.name for p in precs][-1] == "bzip2"
    assert precs == find_precs(user_conda, download_dir, package_specs=["bzip2"], channels=[str(CHANNEL)])
    assert all(p.url.startswith(CHANNEL.as_uri() + "/") for p in precs)
    records = fetch_precs(download_dir, precs)
    assert all(Path(r.extracted_package_dir).parent == Path(download_dir) for r in records)
    assert all((Path(r.extracted_package_dir) / "info" / "index.json").is_file() for r in records)

    remap = [{"src": "https://elsewhere.example/other", "dest": "https://wrong.example/x"},
             {"src": CHANNEL.as_uri(), "dest": "https://conda.internal.example/mirrored"}]
    [base] = Image.from_file(DEMO_BASE)
    image = build_docker_environment_image(
        base_image=base, output_image="remapped:1", records=records, default_prefix="/opt/conda",
        download_dir=download_dir, user_conda=user_conda, channels_remap=remap, layering_strategy="layered",
    )
    recorded = {r["name"]: r for r in _layer_records(image).values()}
    assert sorted(recorded) == sorted(p.name for p in precs)
    for prec in precs:
        assert recorded[prec.name]["url"] == seed_get_final_url(remap, prec.url)
        assert recorded[prec.name]["channel"].rstrip("/") == "https://conda.internal.example/mirrored"
    # The seed's own command line called the 0.1.x build positionally.
    from conda_docker.conda import build_docker_environment

    written = build_docker_environment(base, "positional:1", records, str(tmp_path / "pos.tar"), "/opt/conda",
                                       download_dir, user_conda, remap, layering_strategy="single")
    assert (tmp_path / "pos.tar").is_file() and written.outputs[str(tmp_path / "pos.tar")] == written.image_id
    assert sorted(r["url"] for r in written.records) == sorted(recorded[p.name]["url"] for p in precs)

    # The records are built exactly: a package that does not match its record's hash is refused.
    bad = [type(records[0]).from_objects(records[0], sha256="0" * 64)]
    from conda_docker import CondaDockerError

    with pytest.raises(CondaDockerError, match=f"(?s){records[0].name}.*hash mismatch"):
        build_docker_environment_image(base_image=base, output_image="bad:1", records=bad, channels_remap=remap)


def test_records_read_from_a_prefix_and_a_name(no_conda, extracted_prefix, tmp_path, monkeypatch):
    from conda_docker.conda import PackageCacheRecord, find_precs, precs_from_environment_name, precs_from_environment_prefix

    download_dir = str(tmp_path / "pkgs")
    precs = precs_from_environment_prefix(extracted_prefix, download_dir)
    names = [p.name for p in precs]
    assert names[-1] == "bzip2" and len(set(names)) == len(names)
    monkeypatch.setenv("CONDA_ENVS_PATH", str(extracted_prefix.parent))
    assert precs_from_environment_name("conda", download_dir, "conda") == precs
    assert find_precs("conda", download_dir, prefix=extracted_prefix) == precs

    bzip2 = precs[-1]
    assert isinstance(bzip2, PackageCacheRecord)
    assert bzip2.fn.startswith(f"bzip2-{bzip2.version}-{bzip2.build}")
    assert bzip2.build_string == bzip2.build and isinstance(bzip2.build_number, int)
    assert bzip2.url == f"{CONDA_FORGE}/{bzip2.subdir}/{bzip2.fn}"
    assert len(bzip2.sha256) == 64 and isinstance(bzip2.depends, list)
    assert bzip2.package_tarball_full_path == os.path.join(download_dir, bzip2.fn)
    assert bzip2.extracted_package_dir == os.path.join(download_dir, bzip2.dist_name)
    dumped = bzip2.dump()
    assert {"name", "version", "build", "build_number", "fn", "url", "sha256", "depends", "subdir"} <= set(dumped)
    assert "extracted_package_dir" not in dumped
    assert PackageCacheRecord(json.loads(json.dumps(dumped))).dump() == dumped
    with pytest.raises(AttributeError):
        bzip2.url = "https://example.invalid/x.conda"
    assert PackageCacheRecord.from_objects(bzip2, build_string="other").build == "other"

    # Records are checked before anything is fetched or built: a hash to check by, a URL.
    from conda_docker import CondaDockerError
    from conda_docker.conda import build_docker_environment_image, fetch_precs

    unhashed = {k: bzip2.dump()[k] for k in ("name", "version", "build", "fn", "url")}
    with pytest.raises(CondaDockerError, match="neither a sha256 nor an md5"):
        fetch_precs(download_dir, [PackageCacheRecord(unhashed)])
    injected = PackageCacheRecord.from_objects(bzip2, url=bzip2.url + "\nhttps://evil.example/x.conda")
    with pytest.raises(CondaDockerError, match="not a package URL"):
        build_docker_environment_image(base_image="scratch", output_image="x:1", records=[injected])
    assert not Path(download_dir).exists()


def test_conda_info_runs_the_users_conda_when_there_is_one(tmp_path, monkeypatch):
    from conda_docker.conda import conda_info, find_user_conda

    fake = tmp_path / "bin" / "conda"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "info --json" ] && echo \'{"pkgs_dirs": ["/from/conda/pkgs"]}\'\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CONDA_EXE", str(fake))
    assert find_user_conda() == str(fake)
    assert conda_info(find_user_conda()) == {"pkgs_dirs": ["/from/conda/pkgs"]}


def test_pull_container_image_reads_the_seeds_variables(bases, registry, monkeypatch):
    from conda_docker.conda import pull_container_image

    assert pull_container_image("scratch").layers == []
    monkeypatch.setenv("CONDA_DOCKER_REGISTRY_URL", f"http://{registry}")
    image = pull_container_image("frolvlad/alpine-glibc:latest")
    assert (image.name, image.tag) == ("frolvlad/alpine-glibc", "latest")
    assert image.layers[0].config["Cmd"] == ["/bin/sh"]
    monkeypatch.setenv("CONDA_DOCKER_REGISTRY_URL", "ftp://example.invalid")
    with pytest.raises(ValueError, match="a registry is"):
        pull_container_image("frolvlad/alpine-glibc:latest")
