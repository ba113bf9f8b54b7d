"""conda-docker: build minimal, reproducible Docker/OCI images from conda environments,
without a Docker daemon.

The seed's API (``conda_docker.registry.client.pull_image``, ``conda_docker.docker.base.Image``,
``conda_docker.conda.build_docker_environment``; the 0.1.x ``conda_docker.conda`` functions
conda-store calls, with ``records=``) and the command line's commands as functions
(:func:`build`, :func:`inspect`, :func:`copy`, :func:`login`), all on the Rust library.
"""

from conda_docker import _native
from conda_docker._api import BuildResult, build, copy, inspect, login
from conda_docker.conda import build_docker_environment, build_docker_environment_image
from conda_docker.docker.base import Image, Layer
from conda_docker.errors import (
    Cancelled,
    CondaDockerError,
    InvalidImage,
    NotFound,
    RegistryError,
    SolveError,
    Unauthorized,
)
from conda_docker.registry.client import pull_image

__version__ = _native.__version__

__all__ = [
    "BuildResult",
    "Cancelled",
    "CondaDockerError",
    "Image",
    "InvalidImage",
    "Layer",
    "NotFound",
    "RegistryError",
    "SolveError",
    "Unauthorized",
    "build",
    "build_docker_environment",
    "build_docker_environment_image",
    "copy",
    "inspect",
    "login",
    "pull_image",
]
