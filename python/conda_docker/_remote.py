"""How calls reach registries: credentials, TLS and the cache, as the native calls take them."""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

Creds = Union[None, str, Tuple[str, str]]


def remote(
    creds: Creds = None,
    insecure: bool = False,
    cert_dir: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
):
    """``(USER:PASS or None, insecure, cert_dir, cache_dir)``; no credentials means they are
    looked up as Docker and podman do (config.json, auth.json, credential helpers)."""
    if creds is not None and not isinstance(creds, str):
        username, password = creds
        creds = f"{username}:{password}"
    return (
        creds,
        bool(insecure),
        os.fspath(cert_dir) if cert_dir is not None else None,
        os.fspath(cache_dir) if cache_dir is not None else None,
    )
