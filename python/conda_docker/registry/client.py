"""Pulling images from registries, as the seed's ``conda_docker.registry.client``."""

from __future__ import annotations

import os
from typing import Optional, Union

from conda_docker import _native
from conda_docker._remote import Creds, remote
from conda_docker.docker.base import Image

__all__ = ["pull_image"]


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
