"""Building environment images, as the seed's ``conda_docker.conda`` offered it.

Two generations of the seed's API, on the Rust library, with no conda, no chroot and no Docker
daemon:

* 0.0.3: :func:`build_docker_environment` / :func:`build_docker_environment_image` with
  ``packages``, ``channels``, ``prefix``, ``name`` or ``environment_file``;
* 0.1.x, as conda-store calls it: :func:`find_user_conda`, :func:`conda_info`, the ``precs_from_*``
  functions and :func:`find_precs` (package records, :class:`PackageCacheRecord`),
  :func:`fetch_precs`, and the two build functions with ``records=...``.

conda is never imported; ``conda_info`` runs the user's conda only when there is one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from conda_docker import _native
from conda_docker._api import BuildResult, build, split_reference
from conda_docker.docker.base import Image
from conda_docker.errors import CondaDockerError
from conda_docker.records import PackageCacheRecord
from conda_docker.registry.client import Registry

__all__ = [
    "PackageCacheRecord",
    "build_docker_environment",
    "build_docker_environment_image",
    "conda_info",
    "fetch_precs",
    "find_precs",
    "find_user_conda",
    "precs_from_environment_name",
    "precs_from_environment_prefix",
    "precs_from_package_specs",
    "pull_container_image",
]

PathLike = Union[str, "os.PathLike[str]"]
Remap = Iterable[Mapping[str, str]]

#: Where the seed installed environments in the image, and what ``conda_info`` reports as
#: ``CONDA_ROOT`` without conda.
DEFAULT_PREFIX = "/opt/conda"


def find_user_conda(conda_exe: str = "conda") -> str:
    """The user's conda, as the seed found it: ``$CONDA_EXE``, else ``conda_exe``. It need not
    exist: nothing here needs conda."""
    return os.environ.get("CONDA_EXE", "") or conda_exe


def _has_conda(user_conda: Optional[str]) -> bool:
    return bool(user_conda) and shutil.which(user_conda) is not None


def _cache_dir() -> Optional[str]:
    """The cache ``--cache-dir`` would name: ``$CONDA_DOCKER_CACHE_DIR``, else the default."""
    return os.environ.get("CONDA_DOCKER_CACHE_DIR") or None


def conda_info(user_conda: Optional[str] = None) -> Dict[str, Any]:
    """``conda info --json`` of ``user_conda`` when that conda exists. Otherwise the same keys
    from conda-docker's own settings: ``pkgs_dirs`` (the package cache:
    ``$CONDA_DOCKER_CACHE_DIR/pkgs``, else rattler's shared cache's, as builds use it),
    ``env_vars.CONDA_ROOT`` and ``default_prefix`` (``/opt/conda``, where images get the
    environment), ``channels``
    (``conda-forge``, the default) and ``channels_remap`` (the config file's ``[mirrors]``, as
    ``{"src": MIRROR, "dest": CHANNEL}``: packages fetched from the mirror are recorded under
    the channel)."""
    if _has_conda(user_conda):
        out = subprocess.run([user_conda, "info", "--json"], check=True, capture_output=True)
        return json.loads(out.stdout)
    pkgs_dir, mirrors = _native.conda_settings(_cache_dir())
    return {
        "pkgs_dirs": [os.fspath(pkgs_dir)],
        "env_vars": {"CONDA_ROOT": DEFAULT_PREFIX},
        "root_prefix": DEFAULT_PREFIX,
        "default_prefix": DEFAULT_PREFIX,
        "channels": ["conda-forge"],
        "conda_default_channels": [],
        "channels_remap": [{"src": fetch.rstrip("/"), "dest": canonical.rstrip("/")} for canonical, fetch in mirrors],
        "platform": "linux-64",
    }


def _remap_entry(entry: Mapping[str, str]):
    try:
        src, dest = str(entry["src"]).rstrip("/"), str(entry["dest"]).rstrip("/")
    except (KeyError, TypeError):
        raise CondaDockerError(f"channels_remap: {entry!r} is not {{'src': URL, 'dest': URL}}") from None
    if not src or not dest:
        raise CondaDockerError(f"channels_remap: {entry!r} has an empty URL")
    return src, dest


def _mirrors(channels_remap: Optional[Remap]) -> List[str]:
    """``channels_remap`` as mirrors (``--mirror DEST=SRC``): packages recorded under ``dest``
    are fetched from ``src``, and packages fetched from ``src`` are recorded under ``dest``."""
    mirrors = []
    for entry in channels_remap or ():
        src, dest = _remap_entry(entry)
        mirrors.append(f"{dest}={src}")
    return mirrors


def _records(texts: Sequence[str], download_dir: PathLike) -> List[PackageCacheRecord]:
    where = os.fspath(download_dir)
    return [PackageCacheRecord.in_dir(json.loads(t), where) for t in texts]


def precs_from_environment_prefix(environment: PathLike, download_dir: PathLike, user_conda: Optional[str] = None) -> List[PackageCacheRecord]:
    """The records of the environment at ``environment``, read from its ``conda-meta`` (as
    ``build -p`` reads it; no ``conda list``), in dependency order, placed in
    ``download_dir``. ``user_conda`` is accepted and not needed."""
    return _records(_native.prefix_records(os.fspath(environment)), download_dir)


def precs_from_environment_name(environment: str, download_dir: PathLike, user_conda: Optional[str] = None) -> List[PackageCacheRecord]:
    """As :func:`precs_from_environment_prefix`, for the environment named ``environment``
    (found as ``build -n`` finds it: ``$CONDA_ENVS_PATH``, ``~/.conda/envs``, ...)."""
    return precs_from_environment_prefix(_native.find_named_prefix(environment), download_dir, user_conda)


def precs_from_package_specs(
    package_specs: Iterable[str],
    solver: Optional[str],
    download_dir: PathLike,
    user_conda: Optional[str] = None,
    channels: Iterable[str] = (),
    conda_default_channels: Iterable[str] = (),
    channels_remap: Optional[Remap] = (),
    platform: str = "linux-64",
) -> List[PackageCacheRecord]:
    """Solves ``package_specs`` in-process (rattler's solver) against ``channels`` then
    ``conda_default_channels`` (``conda-forge`` when both are empty) for ``platform``. The
    records' URLs are where the packages are fetched from. ``solver`` (the seed's conda or
    mamba to solve with) is accepted and ignored: no conda runs. ``channels_remap`` makes its
    ``dest`` channels fetched from their ``src``."""
    names = [os.fspath(c) for c in list(channels) + list(conda_default_channels)] or ["conda-forge"]
    texts = _native.solve_specs(list(package_specs), names, platform, _mirrors(channels_remap), _cache_dir())
    return _records(texts, download_dir)


def find_precs(
    user_conda: Optional[str],
    download_dir: PathLike,
    name: Optional[str] = None,
    prefix: Optional[PathLike] = None,
    package_specs: Optional[Iterable[str]] = None,
    solver: Optional[str] = None,
    channels: Iterable[str] = (),
    conda_default_channels: Iterable[str] = (),
    channels_remap: Optional[Remap] = (),
) -> List[PackageCacheRecord]:
    """The records of the environment named ``name``, else at ``prefix``, else of
    ``package_specs`` solved, as the seed chose among them."""
    if name is not None:
        return precs_from_environment_name(name, download_dir, user_conda)
    if prefix is not None:
        return precs_from_environment_prefix(prefix, download_dir, user_conda)
    if package_specs is not None:
        return precs_from_package_specs(
            list(package_specs), solver, download_dir, user_conda,
            channels=channels, conda_default_channels=conda_default_channels, channels_remap=channels_remap,
        )
    raise CondaDockerError("find_precs: give name, prefix or package_specs")


def fetch_precs(download_dir: PathLike, precs: Iterable[PackageCacheRecord]) -> List[PackageCacheRecord]:
    """Downloads each record's package into ``download_dir`` (a conda ``pkgs`` directory),
    checks it against the record's sha256 (md5 when it has none) and extracts it there; a
    package already there is checked, not fetched again. Packages are fetched from where the
    config file's ``[mirrors]`` say their channel is. Returns the records with
    ``extracted_package_dir`` set (the archive itself is not kept: it is extracted as it
    streams). A record with neither a sha256 nor an md5 is refused."""
    precs = list(precs)
    for p in precs:
        _checked_url(p)
    where = os.fspath(download_dir)
    os.makedirs(where, exist_ok=True)
    dirs = _native.fetch_records(where, [json.dumps(p.dump()) for p in precs], [])
    return [
        PackageCacheRecord.from_objects(p, package_tarball_full_path=os.path.join(where, p.fn), extracted_package_dir=os.fspath(d))
        for p, d in zip(precs, dirs)
    ]


def _is_records(packages: Any) -> bool:
    return isinstance(packages, (list, tuple)) and bool(packages) and all(isinstance(p, PackageCacheRecord) for p in packages)


def _checked_url(record: PackageCacheRecord) -> str:
    """``URL#sha256:HEX`` (``URL#MD5`` when the record has no sha256), as ``@EXPLICIT`` lists
    packages; a record with neither hash, or a URL that is not one, is refused."""
    url = record.url
    if any(c.isspace() for c in url) or "#" in url:
        raise CondaDockerError(f"record {record.dist_name}: `{url}` is not a package URL")
    if record.sha256:
        return f"{url}#sha256:{record.sha256}"
    if record.md5:
        return f"{url}#{record.md5}"
    raise CondaDockerError(f"record {record.dist_name} has neither a sha256 nor an md5 to check it by")


def _explicit(records: Sequence[PackageCacheRecord], directory: str) -> str:
    """``records`` as conda's ``@EXPLICIT`` list (``URL#sha256:HEX``) in ``directory``."""
    lines = ["@EXPLICIT"] + [_checked_url(r) for r in records]
    path = os.path.join(directory, "records.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _platform(records: Sequence[PackageCacheRecord]) -> str:
    subdirs = {r.subdir for r in records if r.subdir and r.subdir != "noarch"}
    if len(subdirs) > 1:
        raise CondaDockerError(f"the records are of several platforms: {', '.join(sorted(subdirs))}")
    return subdirs.pop() if subdirs else "linux-64"


def _from_records(records: Iterable[PackageCacheRecord], channels_remap: Optional[Remap], options: Dict[str, Any], keep: list) -> Dict[str, Any]:
    """The :func:`build` arguments that build ``records`` exactly: an ``@EXPLICIT`` lockfile
    (each package checked against its record's hash), ``channels_remap`` as mirrors."""
    records = list(records)
    if not records:
        raise CondaDockerError("records: no package records to build")
    for key in ("specs", "file", "prefix", "name"):
        if options.get(key):
            raise CondaDockerError(f"give records or {key}, not both")
    tmp = tempfile.TemporaryDirectory(prefix="conda-docker-records-")
    keep.append(tmp)
    return {
        "cache_dir": _cache_dir(),
        **options,
        "file": _explicit(records, tmp.name),
        "platforms": [_platform(records)],
        "mirrors": _mirrors(channels_remap) + list(options.get("mirrors") or []),
    }


def _base(base_image: Union[str, Image], keep: list) -> str:
    """The base as ``build`` takes it; an :class:`Image` is written to an OCI layout first."""
    if isinstance(base_image, Image):
        tmp = tempfile.TemporaryDirectory(prefix="conda-docker-base-")
        keep.append(tmp)
        layout = os.path.join(tmp.name, "layout")
        base_image.write(f"oci:{layout}:base")
        return f"oci:{layout}:base"
    return base_image


def _outputs(output_filename: Optional[PathLike]) -> List[str]:
    return [os.fspath(output_filename)] if output_filename is not None else []


def _args_003(packages=None, output_filename=None, channels=None, platform="linux-64", layering_strategy="layered",
              prefix=None, name=None, environment_file=None, target_prefix=DEFAULT_PREFIX, *, keep: list, **options):
    """``build_docker_environment``'s 0.0.3 arguments (after the image names) as :func:`build`'s."""
    return {
        "specs": list(packages or []), "file": environment_file, "prefix": prefix, "name": name,
        "channels": channels, "platforms": [platform], "layering_strategy": layering_strategy,
        "target_prefix": target_prefix, "outputs": _outputs(output_filename), **options,
    }


def _args_01(records, output_filename=None, default_prefix=None, download_dir=None, user_conda=None,
             channels_remap=(), layering_strategy="layered", target_prefix=DEFAULT_PREFIX, *, keep: list, **options):
    """``build_docker_environment``'s 0.1.x arguments (after the image names) as :func:`build`'s;
    ``default_prefix``, ``download_dir`` and ``user_conda`` are not needed."""
    options.update(layering_strategy=layering_strategy, target_prefix=target_prefix, outputs=_outputs(output_filename))
    return _from_records(records, channels_remap, options, keep)


def _build_args(args: tuple, kwargs: Dict[str, Any], keep: list, writes: bool) -> Dict[str, Any]:
    """The arguments after the image names, either generation's, as :func:`build`'s.
    ``build_docker_environment_image`` (``writes`` false) takes no ``output_filename``."""
    first = args[0] if args else kwargs.get("records", kwargs.get("packages"))
    seed_01 = "records" in kwargs or _is_records(first)
    if not writes:
        if "output_filename" in kwargs:
            raise TypeError("build_docker_environment_image writes nothing: use write_file, or build_docker_environment")
        args = args[:1] + (None,) + args[1:] if len(args) > 1 else args  # no output_filename
    return (_args_01 if seed_01 else _args_003)(*args, keep=keep, **kwargs)


_SEED_01 = """
    The 0.1.x arguments build the records ``records`` (from :func:`fetch_precs` or a
    ``precs_from_*`` function) exactly, each package checked against its record's hash:
    ``channels_remap`` (``[{"src": URL, "dest": URL}]``) records packages fetched from ``src``
    under ``dest`` and fetches packages recorded under ``dest`` from ``src``.
    ``default_prefix`` (where the seed found conda's standalone executable) and ``user_conda``
    are accepted and ignored: nothing runs conda. ``download_dir`` (where :func:`fetch_precs`
    put the packages) is accepted: packages are read through the build's package cache, which
    is ``conda_info()["pkgs_dirs"][0]`` when conda is absent. The environment goes to
    ``target_prefix`` (``/opt/conda``, as the seed's). Other keyword arguments are
    :func:`conda_docker.build`'s."""


def build_docker_environment(base_image: Union[str, Image], output_image: str, *args: Any, **kwargs: Any) -> BuildResult:
    """Builds an environment on ``base_image`` (a reference as ``docker pull`` takes it, any
    ``-b`` location, or an :class:`Image`) and writes the image ``output_image`` as a
    docker-archive at ``output_filename``. Either generation of the seed's arguments:

    * 0.0.3: ``(base_image, output_image, packages=None, output_filename=None, channels=None,
      platform="linux-64", layering_strategy="layered", prefix=None, name=None,
      environment_file=None, target_prefix="/opt/conda", **options)``: ``packages`` solved, or
      ``environment_file``, or the environment at ``prefix`` / named ``name``;
    * 0.1.x: ``(base_image, output_image, records, output_filename=None, default_prefix=None,
      download_dir=None, user_conda=None, channels_remap=(), layering_strategy="layered",
      target_prefix="/opt/conda", **options)``, told apart by ``records``.
    """
    keep: list = []
    try:
        options = _build_args(args, kwargs, keep, writes=True)
        return build(base=_base(base_image, keep), images=[output_image], **options)
    finally:
        for tmp in keep:
            tmp.cleanup()


def build_docker_environment_image(base_image: Union[str, Image], output_image: str, *args: Any, **kwargs: Any) -> Image:
    """As :func:`build_docker_environment`, without ``output_filename`` and without writing:
    returns the :class:`Image` (named ``output_image``) to edit further and write with
    ``write_file``. 0.0.3: ``(base_image, output_image, packages=None, channels=None,
    platform="linux-64", ...)``; 0.1.x: ``(base_image, output_image, records,
    default_prefix=None, download_dir=None, user_conda=None, channels_remap=(),
    layering_strategy="layered", ...)``, as conda-store calls it.
    """
    keep: list = []
    try:
        options = _build_args(args, kwargs, keep, writes=False)
        result = build(base=_base(base_image, keep), images=[output_image], **options)
    except BaseException:
        for tmp in keep:
            tmp.cleanup()
        raise
    image = result.image
    image.name, image.tag = split_reference(output_image)
    # The base's layers are read from the temporary layout when the image is written.
    image._keep.extend(keep)
    return image


build_docker_environment.__doc__ += _SEED_01
build_docker_environment_image.__doc__ += _SEED_01


def pull_container_image(base_image: str) -> Image:
    """The seed's base-image pull: ``scratch`` is an empty image; anything else is pulled from
    ``$CONDA_DOCKER_REGISTRY_URL`` (Docker Hub by default) with
    ``$CONDA_DOCKER_REGISTRY_USERNAME`` / ``_PASSWORD``."""
    name, tag = split_reference(base_image)
    if base_image == "scratch":
        return Image(name, tag)
    registry = Registry(
        os.environ.get("CONDA_DOCKER_REGISTRY_URL", "https://registry-1.docker.io"),
        username=os.environ.get("CONDA_DOCKER_REGISTRY_USERNAME"),
        password=os.environ.get("CONDA_DOCKER_REGISTRY_PASSWORD"),
    )
    return registry.pull_image(name, tag)
