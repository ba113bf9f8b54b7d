"""Package records, as the seed's 0.1.x API handed them around (conda's ``PackageCacheRecord``),
without conda: a record is the ``repodata_record.json`` of one package and where it is kept."""

from __future__ import annotations

import copy
import os
from typing import Any, Dict, Mapping, Optional

__all__ = ["PackageCacheRecord"]

#: The fields conda's records have that a ``repodata_record.json`` may leave out: ``None``.
_OPTIONAL = (
    "md5", "sha256", "size", "license", "license_family", "timestamp", "noarch", "features",
    "track_features", "channel", "subdir", "arch", "platform", "python_site_packages_path",
)
#: Lists conda gives as empty when a record has none.
_LISTS = ("depends", "constrains")


def dist_name(fn: str) -> str:
    """``name-version-build`` of a package file name (``.conda`` or ``.tar.bz2``)."""
    base = os.path.basename(fn)
    for suffix in (".tar.bz2", ".conda"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return os.path.splitext(base)[0]


class PackageCacheRecord:
    """One package: the fields of its ``repodata_record.json`` as attributes (``name``,
    ``version``, ``build`` (also ``build_string``), ``build_number``, ``depends``,
    ``constrains``, ``subdir``, ``fn``, ``url``, ``channel``, ``md5``, ``sha256``, ``size``,
    ``license``, ``timestamp``, ...), with ``package_tarball_full_path`` and
    ``extracted_package_dir`` (where the package is kept), as conda's record of that name.
    Read-only; :meth:`from_objects` makes a changed copy."""

    __slots__ = ("_fields", "package_tarball_full_path", "extracted_package_dir")

    def __init__(
        self,
        fields: Mapping[str, Any],
        package_tarball_full_path: Optional[str] = None,
        extracted_package_dir: Optional[str] = None,
    ):
        fields = dict(fields)
        for key in ("name", "version", "build", "fn", "url"):
            if not isinstance(fields.get(key), str) or not fields[key]:
                raise ValueError(f"a package record needs `{key}` (got {fields.get(key)!r})")
        fields.setdefault("build_number", 0)
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "package_tarball_full_path", package_tarball_full_path)
        object.__setattr__(self, "extracted_package_dir", extracted_package_dir)

    @classmethod
    def in_dir(cls, fields: Mapping[str, Any], download_dir: str, extracted: Optional[str] = None):
        """The record of ``fields`` kept in ``download_dir``, as the seed placed packages."""
        fn = fields.get("fn") or ""
        return cls(
            fields,
            package_tarball_full_path=os.path.join(download_dir, fn),
            extracted_package_dir=extracted or os.path.join(download_dir, dist_name(fn)),
        )

    @classmethod
    def from_objects(cls, record: "PackageCacheRecord", **changes: Any) -> "PackageCacheRecord":
        """A copy of ``record`` with ``changes`` (fields or the two paths), as conda's."""
        fields = copy.deepcopy(record._fields)
        tarball = changes.pop("package_tarball_full_path", record.package_tarball_full_path)
        extracted = changes.pop("extracted_package_dir", record.extracted_package_dir)
        if "build_string" in changes:
            changes["build"] = changes.pop("build_string")
        fields.update(changes)
        return cls(fields, tarball, extracted)

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name == "build_string":
            return fields["build"]
        if name in fields:
            value = fields[name]
            return list(value) if isinstance(value, list) else value
        if name in _LISTS:
            return []
        if name in _OPTIONAL:
            return None
        raise AttributeError(f"a package record has no `{name}`")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("package records are read-only: use PackageCacheRecord.from_objects")

    @property
    def dist_name(self) -> str:
        """``name-version-build``."""
        return dist_name(self._fields["fn"])

    @property
    def base_url(self) -> str:
        """The channel's URL: the package URL without its subdir and file name."""
        return self._fields["url"].rsplit("/", 2)[0]

    def dump(self) -> Dict[str, Any]:
        """The record as ``repodata_record.json`` holds it (what conda's ``dump()`` gives;
        without the two paths, which say where this machine keeps the package)."""
        return copy.deepcopy(self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackageCacheRecord) and self._fields == other._fields

    def __hash__(self) -> int:
        return hash((self._fields["url"], self._fields.get("sha256"), self._fields.get("md5")))

    def __repr__(self) -> str:
        return f"PackageCacheRecord({self._fields.get('channel') or self.base_url}::{self.dist_name})"
