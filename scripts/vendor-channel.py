#!/usr/bin/env python3
"""Copy the packages needed by NAMES (and their dependencies) from a real conda-forge channel.

Usage: vendor-channel.py SOURCE_CHANNEL DEST_CHANNEL NAME...
       (SUBDIR=linux-aarch64 for another platform; default linux-64;
        EXTERNAL=python leaves out dependencies the channel will not hold)

Writes DEST/<subdir>/repodata.json holding the source's records for exactly the copied archives,
so the vendored channel is a real, smaller conda-forge channel.
"""
import json
import os
import shutil
import sys
from pathlib import Path

src, dest, *names = sys.argv[1:]
src, dest = Path(src), Path(dest)
subdirs = (os.environ.get("SUBDIR", "linux-64"), "noarch")
repodata = {s: json.loads((src / s / "repodata.json").read_text()) for s in subdirs}

by_name = {}
for subdir, rd in repodata.items():
    for key in ("packages", "packages.conda"):
        for fn, rec in rd.get(key, {}).items():
            by_name.setdefault(rec["name"], []).append((subdir, key, fn, rec))

external = set(os.environ.get("EXTERNAL", "").split(","))
wanted, todo = set(), list(names)
while todo:
    name = todo.pop()
    if name in wanted or name in external or name.startswith("__"):
        continue
    if name not in by_name:
        sys.exit(f"{name} is not in {src}")
    wanted.add(name)
    for _, _, _, rec in by_name[name]:
        todo.extend(dep.split()[0] for dep in rec.get("depends", []))

for subdir, rd in repodata.items():
    out = {k: v for k, v in rd.items() if k not in ("packages", "packages.conda")}
    out["packages"], out["packages.conda"] = {}, {}
    (dest / subdir).mkdir(parents=True, exist_ok=True)
    for name in sorted(wanted):
        for s, key, fn, rec in by_name[name]:
            if s == subdir:
                out[key][fn] = rec
                shutil.copy2(src / s / fn, dest / s / fn)
    (dest / subdir / "repodata.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print(" ".join(sorted(wanted)))
