#!/usr/bin/env python3
"""Write a one-package conda channel, for tests that need a package the fixture channels lack.

Usage: conda_package.py DEST_CHANNEL NAME VERSION [PATH=CONTENT ...]
As a module: write_channel(dest, name, version, files, depends=()), where files maps a path in
the package to bytes, to ("link", TARGET) for a symlink, or to ("hardlink", PATH) for a hard
link to another file of the package.

Writes DEST_CHANNEL/linux-64/NAME-VERSION-0.tar.bz2 (info/index.json, info/paths.json,
info/files and the files) with repodata.json beside it, as conda-build would lay it out.
"""
import bz2
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

TIMESTAMP = 1735689600000


def write_channel(dest, name, version, files, depends=()):
    dest = Path(dest)
    index = {
        "name": name, "version": version, "build": "0", "build_number": 0,
        "depends": list(depends), "license": "BSD-3-Clause", "subdir": "linux-64",
        "arch": "x86_64", "platform": "linux", "timestamp": TIMESTAMP,
    }
    paths = []
    for path, data in sorted(files.items()):
        if isinstance(data, tuple) and data[0] == "hardlink":
            target = files[data[1]]
            paths.append({"_path": path, "path_type": "hardlink",
                          "sha256": hashlib.sha256(target).hexdigest(), "size_in_bytes": len(target)})
        elif isinstance(data, tuple):
            paths.append({"_path": path, "path_type": "softlink"})
        else:
            paths.append({"_path": path, "path_type": "hardlink",
                          "sha256": hashlib.sha256(data).hexdigest(), "size_in_bytes": len(data)})
    info = {
        "info/index.json": json.dumps(index, indent=1).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=1).encode(),
        "info/files": "".join(p + "\n" for p in sorted(files)).encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted({**info, **files}.items()):
            entry = tarfile.TarInfo(path)
            entry.mtime = TIMESTAMP // 1000
            if isinstance(data, tuple):
                kind = tarfile.LNKTYPE if data[0] == "hardlink" else tarfile.SYMTYPE
                entry.type, entry.linkname = kind, data[1]
                tar.addfile(entry)
            else:
                entry.size = len(data)
                entry.mode = 0o755 if path.startswith("bin/") or ".so" in path else 0o644
                tar.addfile(entry, io.BytesIO(data))
    package = bz2.compress(raw.getvalue(), 1)

    filename = f"{name}-{version}-0.tar.bz2"
    (dest / "linux-64").mkdir(parents=True, exist_ok=True)
    (dest / "noarch").mkdir(parents=True, exist_ok=True)
    (dest / "linux-64" / filename).write_bytes(package)
    record = dict(index, sha256=hashlib.sha256(package).hexdigest(),
                  md5=hashlib.md5(package).hexdigest(), size=len(package))
    for subdir, packages in (("linux-64", {filename: record}), ("noarch", {})):
        repodata = {"info": {"subdir": subdir}, "packages": packages, "packages.conda": {}}
        (dest / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))


if __name__ == "__main__":
    dest, name, version, *pairs = sys.argv[1:]
    write_channel(dest, name, version,
                  {p: c.encode() for p, c in (pair.split("=", 1) for pair in pairs)})
