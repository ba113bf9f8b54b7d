"""The commands of the command line as functions: ``build``, ``inspect``, ``copy``, ``login``."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from conda_docker import _native
from conda_docker._remote import Creds, remote
from conda_docker.docker.base import Image

__all__ = ["build", "inspect", "copy", "login", "BuildResult"]

PathLike = Union[str, "os.PathLike[str]"]


def _list(value: Union[None, str, Iterable[str]], split: bool = False) -> List[str]:
    if value is None:
        return []
    if isinstance(value, os.PathLike):
        return [os.fspath(value)]
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if split else [value]
    return [str(v) for v in value]


def _command(value: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    """A command as words or a JSON array (as ``--entrypoint``/``--cmd`` take it), or a list."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        return [str(v) for v in json.loads(text)] if text.startswith("[") else shlex.split(text)
    return [str(v) for v in value]


def _path(value: Optional[PathLike]) -> Optional[str]:
    return os.fspath(value) if value is not None else None


@dataclass
class BuildResult:
    """What :func:`build` made."""

    #: The image ID (config digest) of the first platform's image.
    image_id: str
    #: The image ID of each platform's image, in the order of ``platforms``.
    image_ids: List[str]
    #: Each output as given, with what was written: the image ID, or a multi-platform index's digest.
    outputs: Dict[str, str]
    #: Each registry output, with the pushed ``REF@sha256:...`` (for CI to pin).
    digests: Dict[str, str]
    #: The package records of the first platform's environment, in dependency order.
    records: List[Dict[str, Any]]
    #: The records of each platform.
    records_by_platform: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    #: The images, one per platform, to edit or write further.
    images: List[Image] = field(default_factory=list)

    @property
    def image(self) -> Image:
        return self.images[0]


def build(
    specs: Union[None, str, Iterable[str]] = None,
    file: Optional[PathLike] = None,
    prefix: Optional[PathLike] = None,
    *,
    name: Optional[str] = None,
    environment: str = "default",
    channels: Union[None, str, Iterable[str]] = None,
    mirrors: Union[None, str, Iterable[str]] = None,
    channel_names: Union[None, str, Iterable[str]] = None,
    base: str = "debian:stable-slim",
    platforms: Union[None, str, Iterable[str]] = None,
    images: Union[None, str, Iterable[str]] = None,
    outputs: Union[None, str, Iterable[str]] = None,
    target_prefix: str = "/opt/conda",
    layering_strategy: str = "auto",
    max_layers: int = 100,
    trim: Union[None, str, Iterable[str]] = None,
    no_trim: bool = False,
    compression: str = "gzip:3",
    env: Optional[Mapping[str, str]] = None,
    entrypoint: Union[None, str, Sequence[str]] = None,
    cmd: Union[None, str, Sequence[str]] = None,
    workdir: Optional[str] = None,
    labels: Optional[Mapping[str, str]] = None,
    annotations: Optional[Mapping[str, str]] = None,
    expose: Union[None, str, Iterable[str]] = None,
    user: Optional[str] = None,
    writable_prefix: bool = False,
    add: Union[None, str, Iterable[str]] = None,
    chown: bool = False,
    virtual_packages: Optional[Mapping[str, str]] = None,
    sbom: bool = True,
    allow_unhashed_pypi: bool = False,
    pypi_index_url: Optional[str] = None,
    pypi_extra_index_url: Union[None, str, Iterable[str]] = None,
    find_links: Union[None, PathLike, Iterable[PathLike]] = None,
    lock_output: Optional[PathLike] = None,
    sbom_dir: Optional[PathLike] = None,
    dry_run: bool = False,
    cache_dir: Optional[PathLike] = None,
    base_creds: Creds = None,
    creds: Creds = None,
    insecure: bool = False,
    cert_dir: Optional[PathLike] = None,
    timeout: Optional[float] = None,
    low_speed_time: Optional[float] = None,
    low_speed_limit: Optional[int] = None,
    source_date_epoch: Optional[int] = None,
    cache_from: Union[None, str, Iterable[str]] = None,
    cache_to: Optional[str] = None,
    verify_cache: bool = False,
    progress: Optional[Callable[[str, str], Any]] = None,
) -> Union[BuildResult, List[Dict[str, Any]]]:
    """``conda-docker build``: each argument is the command-line option of the same name.

    ``specs`` are match specs (``"numpy>=1.26"``); ``file`` an environment.yml or a lockfile;
    ``prefix``/``name`` an existing environment. ``outputs`` as ``-o`` takes them (a path,
    ``oci:DIR[:TAG]``, ``oci-archive:PATH``, ``docker://REGISTRY/REPO:TAG``); none builds the
    image without writing it (see :attr:`BuildResult.images`). ``progress(event, message)``
    is called with events such as ``solve.started``, ``install.finished``, ``warning``.
    ``sbom_dir`` also writes the SBOMs there. ``add`` (``"SRC:DEST"``, repeatable) puts host
    files on top of the environment, one layer each, as ``--add`` does. An environment file's ``pip:`` section is
    resolved on ``pypi_index_url`` (else ``PIP_INDEX_URL``/``UV_INDEX_URL``, else PyPI), with
    ``pypi_extra_index_url`` and ``find_links`` searched too. ``dry_run=True`` builds nothing and returns the
    layer plan of each platform (a list, as ``--dry-run --json`` prints it). Mirrors come from
    ``mirrors`` and the config file's ``[mirrors]``, as for the command line.
    ``cache_from`` names images pushed before (or ``CONDA_DOCKER_CACHE_FROM``) whose layers
    are taken by key instead of being made; ``timeout``, ``low_speed_time`` (seconds) and
    ``low_speed_limit`` (bytes per second) bound registries and indexes as ``--timeout`` does.
    Ctrl-C stops the build and raises :class:`conda_docker.Cancelled`.
    """
    options = {
        "specs": _list(specs),
        "file": _path(file),
        "environment": environment,
        "prefix": _path(prefix),
        "name": name,
        "channels": [os.fspath(c) for c in _list(channels)],
        "mirrors": _list(mirrors),
        "channel_names": _list(channel_names),
        "platforms": _list(platforms, split=True),
        "base": base,
        "images": _list(images),
        "outputs": [os.fspath(o) for o in _list(outputs)],
        "target_prefix": target_prefix,
        "layering_strategy": layering_strategy,
        "max_layers": int(max_layers),
        "trim": _list(trim, split=True),
        "no_trim": bool(no_trim),
        "compression": compression,
        "env": dict(env or {}),
        "entrypoint": _command(entrypoint),
        "cmd": _command(cmd),
        "workdir": workdir,
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
        "expose": _list(expose),
        "user": user,
        "writable_prefix": bool(writable_prefix),
        "files": [os.fspath(a) for a in _list(add)],
        "chown": bool(chown),
        "virtual_packages": dict(virtual_packages or {}),
        "sbom": bool(sbom),
        "allow_unhashed_pypi": bool(allow_unhashed_pypi),
        "pypi_index_url": pypi_index_url,
        "pypi_extra_index_url": _list(pypi_extra_index_url),
        "find_links": [os.fspath(f) for f in _list(find_links)],
        "lock_output": _path(lock_output),
        "sbom_dir": _path(sbom_dir),
        "cache_dir": _path(cache_dir),
        "base_creds": remote(base_creds)[0],
        "creds": remote(creds)[0],
        "insecure": bool(insecure),
        "cert_dir": _path(cert_dir),
        "timeout": None if timeout is None else float(timeout),
        "low_speed_time": None if low_speed_time is None else float(low_speed_time),
        "low_speed_limit": None if low_speed_limit is None else int(low_speed_limit),
        "source_date_epoch": source_date_epoch,
        "cache_from": _list(cache_from),
        "cache_to": cache_to,
        "verify_cache": bool(verify_cache),
        "progress": progress,
    }
    if dry_run:
        return json.loads(_native.plan(options))
    natives, written, records, tags = _native.build(options)
    platform_names = options["platforms"] or ["linux-64"]
    image_name, image_tag = split_reference(tags[0] if tags else "conda-docker:latest")
    built = [Image._wrap(n, image_name, image_tag) for n in natives]
    image_ids = [n.image_id() or "" for n in natives]
    parsed = [json.loads(r) for r in records]
    return BuildResult(
        image_id=image_ids[0] if image_ids else "",
        image_ids=image_ids,
        outputs={out: w[0] for out, w in written},
        digests={out: w[2] for out, w in written if w[2]},
        records=parsed[0] if parsed else [],
        records_by_platform=dict(zip(platform_names, parsed)),
        images=built,
    )


def split_reference(reference: str):
    """``name:tag`` into its name and tag (``latest`` when none is given)."""
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = reference.rpartition(":")
        return name, tag
    return reference, "latest"


def inspect(
    ref: str,
    *,
    platform: str = "linux-64",
    creds: Creds = None,
    insecure: bool = False,
    cert_dir: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
) -> Dict[str, Any]:
    """``conda-docker inspect --json REF``: the layers (with the conda packages each holds),
    the config and the sizes of the image at ``ref`` (a registry reference,
    ``docker-archive:PATH``, ``oci:DIR[:TAG]``, ``oci-archive:PATH[:TAG]``)."""
    return json.loads(_native.inspect(ref, platform, remote(creds, insecure, cert_dir, cache_dir)))


def copy(
    src: str,
    dst: str,
    *,
    images: Union[None, str, Iterable[str]] = None,
    platform: str = "linux-64",
    compression: str = "gzip:3",
    src_creds: Creds = None,
    creds: Creds = None,
    insecure: bool = False,
    cert_dir: Optional[PathLike] = None,
    cache_dir: Optional[PathLike] = None,
) -> Dict[str, Optional[str]]:
    """``conda-docker copy SRC DST``: returns ``image_id``, ``manifest_digest`` and, for a push,
    ``pushed`` (``REF@sha256:...``)."""
    image_id, manifest, pushed = _native.copy(
        src,
        dst,
        _list(images),
        platform,
        compression,
        remote(src_creds, insecure, cert_dir, cache_dir),
        remote(creds, insecure, cert_dir, cache_dir),
    )
    return {"image_id": image_id, "manifest_digest": manifest, "pushed": pushed}


def login(
    registry: str,
    username: str,
    password: str,
    *,
    insecure: bool = False,
    cert_dir: Optional[PathLike] = None,
) -> str:
    """``conda-docker login``: checks the credentials against ``registry`` (``ghcr.io``,
    ``localhost:5000``; ``docker.io`` for Docker Hub) and stores them where ``docker login``
    would; returns where they went."""
    return _native.login(registry, username, password, bool(insecure), _path(cert_dir))
