#!/usr/bin/env python3
"""Writes a one-package channel for the "one package changed" runs.

    change_one.py SYNTH_CHANNEL OUT_DIR [VERSION]

Picks the 21st largest `synth-NNN` archive of SYNTH_CHANNEL (a mid-sized package of a
make-synthetic-channel.py channel, about 1% of its bytes), and writes VERSION (default 1.1) of it, with
the same dependencies but new content of the same size, into OUT_DIR (linux-64/ with its
repodata.json, and an empty noarch/). Passed as the first `-c`, OUT_DIR wins over SYNTH_CHANNEL
for that package only. Prints `NAME INSTALLED_BYTES SHARE` (SHARE: its archive's fraction of all
the environment's archive bytes).
"""
import importlib.util
import io
import subprocess
import tarfile
import zipfile
import json
import os
import random
import shutil
import sys

here = os.path.dirname(os.path.abspath(__file__))
tool = os.path.join(here, "..", "..", "..", "shared", "tools", "make-synthetic-channel.py")
spec = importlib.util.spec_from_file_location("synth", tool)
synth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synth)

src, out = sys.argv[1], sys.argv[2]
version = sys.argv[3] if len(sys.argv) > 3 else "1.1"
records = json.load(open(os.path.join(src, "linux-64", "repodata.json")))["packages.conda"]
pkgs = sorted(((r["size"], fn) for fn, r in records.items() if r["name"] != "synth-env"),
              reverse=True)
size, fn = pkgs[20]
old = records[fn]


def installed_size(path):
    """Bytes the package installs, from info/paths.json inside its `.conda`."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.startswith("info-"))
        raw = subprocess.run(["zstd", "-dqc"], input=z.read(name), check=True,
                             stdout=subprocess.PIPE).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        paths = json.load(t.extractfile("info/paths.json"))["paths"]
    return sum(p["size_in_bytes"] for p in paths if p["path_type"] != "softlink")


installed = installed_size(os.path.join(src, "linux-64", fn))
shutil.rmtree(out, ignore_errors=True)
os.makedirs(os.path.join(out, "linux-64"))
os.makedirs(os.path.join(out, "noarch"))
rng = random.Random(f"changed-{old['name']}-{version}")
files = synth.package_files(rng, old["name"], installed)
new_fn, rec = synth.write_package(os.path.join(out, "linux-64"), old["name"], version, "h0_0",
                                  old["depends"], files)
repodata = {"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": {new_fn: rec},
            "removed": [], "repodata_version": 1}
json.dump(repodata, open(os.path.join(out, "linux-64", "repodata.json"), "w"), indent=1)
json.dump({"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}, "removed": [],
           "repodata_version": 1}, open(os.path.join(out, "noarch", "repodata.json"), "w"))
total = sum(r["size"] for r in records.values())
print(old["name"], installed, f"{size / total:.4f}")
