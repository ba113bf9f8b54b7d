"""Pulling images from registries, as the seed's ``conda_docker.registry.client``."""

from __future__ import annotations

import os
from typing import Optional, Union

from conda_docker import _native
from conda_docker._remote import Creds, remote
from conda_docker.docker.base import Image

__all__ = ["Registry", "pull_image"]


def pull_image(
    image: str,
    tag: str = "latest",
    *,
    platform: str = "linux-64",
    creds: Creds = None,
    insecure: bool = False,
    cert_dir: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
) -> Image:
    """Pulls ``image:tag`` (``tag`` may be a ``sha256:`` digest) as ``docker pull`` names it:
    ``debian`` and ``frolvlad/alpine-glibc`` from Docker Hub, ``ghcr.io/org/app`` or
    ``127.0.0.1:5000/app`` from that registry. Credentials are looked up as Docker and podman
    do unless ``creds`` (``(user, password)`` or ``"user:password"``) are given. Blobs are kept
    in the blob cache, not in memory; a multi-platform image gives its ``platform`` entry."""
    reference = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
    native = _native.NativeImage.read(reference, platform, remote(creds, insecure, cert_dir, cache_dir))
    return Image._wrap(native, image, tag)


class Registry:
    """A registry at ``hostname`` (``https://ghcr.io``, ``http://127.0.0.1:5000``;
    ``https://registry-1.docker.io`` is Docker Hub), as ``python_docker.registry.Registry``
    named it: conda-store's registries pull their base images through it. ``username`` and
    ``password`` are the credentials (else they are looked up as Docker and podman do)."""

    def __init__(self, hostname: str = "https://registry-1.docker.io", username: Optional[str] = None, password: Optional[str] = None):
        scheme, sep, host = hostname.partition("://")
        if not sep:
            scheme, host = "https", hostname
        host = host.rstrip("/")
        if scheme not in ("http", "https") or not host or "/" in host:
            raise ValueError(f"`{hostname}`: a registry is https://HOST[:PORT] or http://HOST[:PORT]")
        self.hostname = f"{scheme}://{host}"
        self.username = username
        self.password = password
        self._host = "docker.io" if host in ("registry-1.docker.io", "index.docker.io") else host
        self._insecure = scheme == "http"

    def pull_image(self, image: str, tag: Optional[str] = None, **options) -> Image:
        """Pulls ``image:tag`` from this registry (``image`` may carry the tag, ``name:tag``,
        when ``tag`` is not given); ``lazy`` is accepted: layers are never held in memory."""
        options.pop("lazy", None)
        if tag is None:
            last = image.rsplit("/", 1)[-1]
            image, tag = (image.rsplit(":", 1) if ":" in last else (image, "latest"))
        creds = (self.username, self.password) if self.username is not None and self.password is not None else None
        pulled = pull_image(f"{self._host}/{image}", tag, creds=creds, insecure=self._insecure, **options)
        pulled.name = image
        return pulled

    def __repr__(self) -> str:
        return f"<Registry {self.hostname}>"
