"""Images and layers, as the seed's ``conda_docker.docker.base`` named them.

An :class:`Image` wraps the library's image: its layers stay where they are (a registry's blobs
in the blob cache, an archive on disk, host files read when the image is written), so nothing is
held in memory. ``layers[0]`` is the top layer, as in the seed.
"""

from __future__ import annotations

import copy
import json
import os
import tarfile
import tempfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from conda_docker import _native
from conda_docker import _native as _native_module
from conda_docker._remote import Creds, remote
from conda_docker.errors import CondaDockerError

__all__ = ["Image", "Layer"]

PathLike = Union[str, "os.PathLike[str]"]
Filter = Callable[[tarfile.TarInfo], Optional[tarfile.TarInfo]]

_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def _mtime() -> int:
    """The mtime of layers made here: ``SOURCE_DATE_EPOCH`` if set, else 0 (reproducible)."""
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        return 0


class Layer:
    """One layer of an :class:`Image`.

    ``config`` is the image's run-time config (``Env``, ``Cmd``, ``Entrypoint``, ...): on the
    top layer (``image.layers[0]``) it is the image's own dict, edited in place; on lower layers
    it is a copy (an image has one config; the seed's v1 layers each carried one and the top
    one counted).
    """

    def __init__(
        self,
        id: Optional[str] = None,
        parent: Optional[str] = None,
        architecture: Optional[str] = None,
        os: Optional[str] = None,
        created: Optional[str] = None,
        author: Optional[str] = None,
        checksum: Optional[str] = None,
        size: Optional[int] = None,
        content: Optional[bytes] = None,
        config: Optional[Dict[str, Any]] = None,
        *,
        _native: Optional["_native.NativeLayer"] = None,
        _image: Optional["Image"] = None,
        _top: bool = False,
    ):
        """The seed's constructor: a layer of the tar bytes ``content`` (plain, gzip or zstd)
        with run-time ``config``; the other arguments are accepted and unused (a layer is named
        by its digest, and the platform is the image's)."""
        self._image = _image
        self._top = _top
        self._config = dict(config) if config is not None else None
        self._keep = None
        if _native is None:
            if content is None:
                raise CondaDockerError("Layer(content=...): give the layer's tar bytes")
            tmp = tempfile.NamedTemporaryFile(prefix="conda-docker-layer-", suffix=".tar")
            tmp.write(bytes(content))
            tmp.flush()
            self._keep = tmp  # read when the image is written
            _native = _native_module.layer_from_tar(tmp.name)
        self._native = _native

    @property
    def id(self) -> Optional[str]:
        """The layer's uncompressed digest without ``sha256:`` (known once read or written)."""
        diff_id = self._native.diff_id
        return diff_id.split(":", 1)[1] if diff_id else None

    @property
    def diff_id(self) -> Optional[str]:
        return self._native.diff_id

    @property
    def description(self) -> str:
        return self._native.description

    @property
    def created_by(self) -> Optional[str]:
        return self._native.created_by

    @property
    def created(self) -> Optional[str]:
        return self._native.created

    @property
    def config(self) -> Dict[str, Any]:
        if self._image is None:
            if self._config is None:
                self._config = {"Env": []}
            return self._config
        if self._top:
            return self._image.config
        return copy.deepcopy(self._image.config)

    @config.setter
    def config(self, value: Dict[str, Any]) -> None:
        if self._image is None:
            self._config = dict(value)
            return
        if not self._top:
            raise CondaDockerError("only the top layer's config (image.layers[0].config) can be set")
        self._image.config = value

    def list_files(self) -> List[str]:
        """The paths in the layer, as the seed's ``Layer.list_files`` gave them."""
        return self._native.list_files()

    # -- the layer as bytes (python_docker's Layer), each read once when first asked for -----

    def _bytes(self, compressed: bool):
        key = "_compressed" if compressed else "_content"
        cached = self.__dict__.get(key)
        if cached is None:
            cached = _native_module.layer_bytes(self._native, compressed)
            self.__dict__[key] = cached
        return cached

    @property
    def content(self) -> bytes:
        """The layer's uncompressed tar. It is made (or read from where the layer is kept)
        when first asked for and then held in memory, whole: a large layer takes its size in
        RAM; ``write_file``/``write`` stream instead."""
        return self._bytes(False)[0]

    @property
    def checksum(self) -> str:
        """The sha256 (hex) of :attr:`content`: the layer's diff_id without ``sha256:``."""
        return self._bytes(False)[1]

    @property
    def size(self) -> int:
        """How many bytes :attr:`content` has."""
        return len(self.content)

    @property
    def compressed_content(self) -> bytes:
        """The layer as a registry gets it: gzip (a pulled gzip blob as it was stored), held in
        memory once asked for."""
        return self._bytes(True)[0]

    @property
    def compressed_checksum(self) -> str:
        """The sha256 (hex) of :attr:`compressed_content`: the manifest's layer digest."""
        return self._bytes(True)[1]

    @property
    def compressed_size(self) -> int:
        """How many bytes :attr:`compressed_content` has."""
        return len(self.compressed_content)

    def __repr__(self) -> str:
        return f"<Layer {self.diff_id or '(not yet written)'}: {self.description}>"


class Image:
    """An image named ``name:tag``, made of ``layers`` (top first) or empty."""

    def __init__(self, name: str, tag: str = "latest", layers: Optional[List[Layer]] = None, *, platform: str = "linux-64"):
        self.name = name
        self.tag = tag
        self._native = _native.NativeImage.scratch(platform)
        self._keep: list = []
        self._load_config()
        if layers:
            for layer in reversed(list(layers)):
                self._native.push_layer(layer._native)
            self._keep.extend(layer._keep for layer in layers if layer._keep is not None)
            self.config = copy.deepcopy(layers[0].config)

    @classmethod
    def _wrap(cls, native: "_native.NativeImage", name: str, tag: str) -> "Image":
        image = cls.__new__(cls)
        image.name = name
        image.tag = tag
        image._native = native
        image._keep = []
        image._load_config()
        return image

    def _load_config(self) -> None:
        config = json.loads(self._native.run_config_json())
        self._had_env = "Env" in config
        config.setdefault("Env", [])
        self._config = config

    def _synced(self) -> "_native.NativeImage":
        config = dict(self._config)
        if config.get("Env") == [] and not self._had_env:
            del config["Env"]
        self._native.set_run_config_json(json.dumps(config))
        return self._native

    # -- the config and the layers --------------------------------------------------------

    @property
    def config(self) -> Dict[str, Any]:
        """The run-time config (Docker's keys: ``Env``, ``Cmd``, ``Entrypoint``, ``User``,
        ``WorkingDir``, ``Labels``, ...), edited in place."""
        return self._config

    @config.setter
    def config(self, value: Dict[str, Any]) -> None:
        value = dict(value)
        value.setdefault("Env", [])
        self._config = value

    @property
    def layers(self) -> List[Layer]:
        """The layers, top first. Change them with the methods below, or assign a new list."""
        native = self._native.layers()
        layers = [Layer(_native=n, _image=self, _top=(i == len(native) - 1)) for i, n in reversed(list(enumerate(native)))]
        for layer in layers:
            layer._keep = self._keep or None  # files some layers are read from, kept with them
        return layers

    @layers.setter
    def layers(self, layers: List[Layer]) -> None:
        while self._native.remove_layer() is not None:
            pass
        for layer in reversed(list(layers)):
            self._native.push_layer(layer._native)
            if layer._keep is not None:
                self._keep.append(layer._keep)

    def remove_layer(self) -> Layer:
        """Removes the top layer (``layers[0]``) and returns it."""
        removed = self._native.remove_layer()
        if removed is None:
            raise IndexError("remove_layer: the image has no layers")
        return Layer(_native=removed)

    def add_layer_path(
        self,
        path: PathLike,
        arcpath: Optional[str] = None,
        recursive: bool = True,
        filter: Optional[Filter] = None,
        base_id: Optional[str] = None,
    ) -> None:
        """Adds a layer of the file or directory tree at ``path``, placed at ``arcpath`` in the
        image (default: ``path`` as given, made relative: ``./`` is the root).

        Files are read when the image is written, beneath ``path`` and without following any
        symlink (symlinks are kept as symlinks). ``filter`` gets a :class:`tarfile.TarInfo` per
        entry and returns it (name and mode may change) or ``None`` to leave the entry out.
        ``base_id`` is accepted for the seed's signature; layers are named by their digest.
        """
        path = os.fspath(path)
        scan = _native.scan_path(path, arcpath, recursive)
        where = os.path.normpath("/" + (arcpath if arcpath is not None else path).lstrip("/"))
        self._add(scan, filter, f"conda-docker add_layer_path {where}")

    def add_layer_paths(self, paths: Mapping[PathLike, str], filter: Optional[Filter] = None, base_id: Optional[str] = None) -> None:
        """Adds one layer of each host path (not recursing into directories) at its archive
        path: ``{"/host/file": "/in/image/file"}``."""
        scan = _native.scan_paths([(os.fspath(k), v) for k, v in paths.items()])
        self._add(scan, filter, f"conda-docker add_layer_paths ({len(paths)} paths)")

    def add_layer_contents(self, contents: Mapping[str, bytes], filter: Optional[Filter] = None, base_id: Optional[str] = None) -> None:
        """Adds a layer of files with these contents, mode 0644: ``{"etc/motd": b"hi"}``."""
        scan = _native.scan_contents([(k, bytes(v)) for k, v in contents.items()])
        self._add(scan, filter, "conda-docker add_layer_contents")

    def _add(self, scan: "_native.Scan", filter: Optional[Filter], created_by: str) -> None:
        mtime = _mtime()
        kept = []
        for index, (name, kind, mode, size, target) in enumerate(scan.infos()):
            if filter is None:
                kept.append((index, name, mode, None))
                continue
            if not name:
                continue  # the image's root directory
            info = tarfile.TarInfo(name)
            info.type = _TYPES[kind]
            info.mode = mode
            info.size = size
            info.linkname = target
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            out = filter(info)
            if out is None:
                continue
            if out.type != _TYPES[kind]:
                raise CondaDockerError(f"filter: `{name}` is a {kind}; a filter may rename or drop it, not change its type")
            if (out.uid, out.gid) != (0, 0) or int(out.mtime) != mtime:
                raise CondaDockerError(
                    f"filter: `{name}`: layers are owned by root (uid and gid 0) with one mtime "
                    f"({mtime}, SOURCE_DATE_EPOCH or 0), so that they are reproducible; "
                    "a filter may rename, change the mode of, or drop an entry"
                )
            kept.append((index, out.name, out.mode, out.linkname if kind == "symlink" else None))
        self._native.add_scanned(scan, kept, mtime, created_by)

    # -- reading and writing --------------------------------------------------------------

    @staticmethod
    def from_file(filename: PathLike, *, platform: str = "linux-64") -> List["Image"]:
        """The image in an archive: a docker-archive (``docker save``, podman, skopeo), an
        oci-archive, or an OCI layout directory (``oci:DIR[:TAG]`` or a directory). Returns a
        list, as the seed did (one image: name one of several with
        ``docker-archive:PATH:NAME:TAG`` or ``oci:DIR:TAG``)."""
        text = os.fspath(filename)
        location, name, tag = _locate(text)
        native = _native.NativeImage.read(location, platform, remote())
        return [Image._wrap(native, name, tag)]

    def write_file(self, filename: PathLike, version: str = "v1") -> str:
        """Writes a docker-archive (the ``docker save`` format of Docker 25, which Docker and
        podman load) tagged ``name:tag``; returns the image ID. ``version="v1"`` is the seed's
        name for it and the only one accepted."""
        if version != "v1":
            raise ValueError("only version='v1' (a docker-archive that `docker load` reads) is written")
        image_id, _, _ = self._synced().write("", [self.reference], remote(), "gzip:3", os.fspath(filename))
        return image_id

    def write(
        self,
        location: str,
        *,
        compression: str = "gzip:3",
        creds: Creds = None,
        insecure: bool = False,
        cert_dir: Optional[PathLike] = None,
        cache_dir: Optional[PathLike] = None,
    ) -> Dict[str, Optional[str]]:
        """Writes the image where ``conda-docker build -o`` would (a path, ``oci:DIR[:TAG]``,
        ``oci-archive:PATH``, ``docker://REGISTRY/REPO:TAG``); returns ``image_id``,
        ``manifest_digest`` and, for a push, ``pushed`` (``REF@sha256:...``)."""
        image_id, manifest, pushed = self._synced().write(
            location, [self.reference], remote(creds, insecure, cert_dir, cache_dir), compression, None
        )
        return {"image_id": image_id, "manifest_digest": manifest, "pushed": pushed}

    def inspect(self) -> Dict[str, Any]:
        """What the image holds, as ``conda-docker inspect --json`` prints it."""
        return json.loads(self._synced().inspect_json())

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    def __repr__(self) -> str:
        return f"<Image {self.reference}: {len(self._native.layers())} layers>"


def _stem(path: str) -> str:
    return os.path.basename(path.rstrip("/")).split(".", 1)[0] or "image"


def _split_suffix(rest: str):
    """``PATH[:SUFFIX]`` as the library splits it: a path that exists is whole."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    path, suffix = rest.split(":", 1)
    return path, suffix or None


def _locate(text: str):
    """The location, name and tag of an archive or layout given as a path or ``transport:``."""
    if text.startswith("docker-archive:"):
        path, ref = _split_suffix(text[len("docker-archive:"):])
        name, tag = (ref.rsplit(":", 1) + ["latest"])[:2] if ref else _repo_tag(path)
        return text, name, tag
    for prefix in ("oci-archive:", "oci:"):
        if text.startswith(prefix):
            path, tag = _split_suffix(text[len(prefix):])
            return text, _stem(path), tag or "latest"
    if os.path.isdir(text):
        return "oci:" + text, _stem(text), "latest"
    try:
        with tarfile.open(text) as tar:
            is_docker = any(m.name == "manifest.json" for m in tar.getmembers())
    except (OSError, tarfile.TarError) as e:
        raise CondaDockerError(f"reading `{text}`: {e}") from None
    if is_docker:
        return ("docker-archive:" + text, *_repo_tag(text))
    return "oci-archive:" + text, _stem(text), "latest"


def _repo_tag(path: str):
    """The first ``RepoTags`` entry of a docker-archive, else the file's stem and ``latest``."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else []
        for entry in manifest:
            for repo_tag in entry.get("RepoTags") or []:
                name, _, tag = repo_tag.rpartition(":")
                if name and "/" not in tag:
                    return name, tag
    except (OSError, KeyError, ValueError, tarfile.TarError, AttributeError):
        pass
    return _stem(path), "latest"
