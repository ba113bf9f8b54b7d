"""Building environment images, as the seed's ``conda_docker.conda`` offered it.

Both functions are :func:`conda_docker.build` under the seed's argument names; no conda, no
chroot and no Docker daemon are needed.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Iterable, Optional, Union

from conda_docker._api import BuildResult, build, split_reference
from conda_docker.docker.base import Image

__all__ = ["build_docker_environment", "build_docker_environment_image"]

PathLike = Union[str, "os.PathLike[str]"]


def _base(base_image: Union[str, Image], keep: list) -> str:
    """The base as ``build`` takes it; an :class:`Image` is written to an OCI layout first."""
    if isinstance(base_image, Image):
        tmp = tempfile.TemporaryDirectory(prefix="conda-docker-base-")
        keep.append(tmp)
        layout = os.path.join(tmp.name, "layout")
        base_image.write(f"oci:{layout}:base")
        return f"oci:{layout}:base"
    return base_image


def build_docker_environment(
    base_image: Union[str, Image],
    output_image: str,
    packages: Optional[Iterable[str]] = None,
    output_filename: Optional[PathLike] = None,
    channels: Optional[Iterable[str]] = None,
    platform: str = "linux-64",
    layering_strategy: str = "layered",
    prefix: Optional[PathLike] = None,
    name: Optional[str] = None,
    environment_file: Optional[PathLike] = None,
    target_prefix: str = "/opt/conda",
    **options: Any,
) -> BuildResult:
    """Builds ``packages`` (or ``environment_file``, or the environment at ``prefix`` / named
    ``name``) on ``base_image`` (a reference as ``docker pull`` takes it, any ``-b`` location,
    or an :class:`Image`) and writes the image ``output_image`` as a docker-archive at
    ``output_filename``. Other keyword arguments are :func:`conda_docker.build`'s."""
    keep: list = []
    try:
        return build(
            specs=list(packages or []),
            file=environment_file,
            prefix=prefix,
            name=name,
            channels=channels,
            base=_base(base_image, keep),
            platforms=[platform],
            images=[output_image],
            outputs=[os.fspath(output_filename)] if output_filename is not None else [],
            layering_strategy=layering_strategy,
            target_prefix=target_prefix,
            **options,
        )
    finally:
        for tmp in keep:
            tmp.cleanup()


def build_docker_environment_image(
    base_image: Union[str, Image],
    output_image: str,
    packages: Optional[Iterable[str]] = None,
    channels: Optional[Iterable[str]] = None,
    platform: str = "linux-64",
    layering_strategy: str = "layered",
    prefix: Optional[PathLike] = None,
    name: Optional[str] = None,
    environment_file: Optional[PathLike] = None,
    target_prefix: str = "/opt/conda",
    **options: Any,
) -> Image:
    """As :func:`build_docker_environment`, without writing: returns the :class:`Image`
    (named ``output_image``) to edit further and write with ``write_file``."""
    keep: list = []
    result = build(
        specs=list(packages or []),
        file=environment_file,
        prefix=prefix,
        name=name,
        channels=channels,
        base=_base(base_image, keep),
        platforms=[platform],
        images=[output_image],
        outputs=[],
        layering_strategy=layering_strategy,
        target_prefix=target_prefix,
        **options,
    )
    image = result.image
    image.name, image.tag = split_reference(output_image)
    # The base's layers are read from the temporary layout when the image is written.
    image._keep.extend(keep)
    return image
