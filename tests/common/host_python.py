#!/usr/bin/env python3
"""Package this machine's own Python as a conda `python` package, in a one-package channel.

Usage: host_python.py DEST_CHANNEL

conda-forge's python is too big to vendor, but linking `noarch: python` packages needs a `python`
record in the environment (it decides `lib/pythonX.Y/site-packages`), and running them needs an
interpreter. This writes DEST_CHANNEL/linux-64/python-X.Y.Z-0.tar.bz2 holding the running
interpreter, the shared libraries it links beyond glibc, a trimmed standard library and a
`sitecustomize.py` that puts the conda site-packages on sys.path (Debian's site.py looks only in
dist-packages), with repodata.json beside it (see conda_package.py). Prints the version.
"""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conda_package import write_channel

SKIP_DIRS = {
    "__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
    "pydoc_data", "distutils", "site-packages", "dist-packages", "venv", "sqlite3", "curses",
    "dbm",
}
DYNLOAD = ("_json", "_bz2", "_lzma", "_queue", "_contextvars", "_decimal", "mmap", "termios",
           "resource", "_posixshmem", "_multiprocessing", "_hashlib", "_typing", "_zoneinfo")

dest = Path(sys.argv[1])
ver = f"{sys.version_info.major}.{sys.version_info.minor}"
version = f"{ver}.{sys.version_info.micro}"
stdlib = Path(sysconfig.get_paths()["stdlib"])
exe = Path(os.path.realpath(sys.executable))

files = {}  # path in the package -> bytes, or ("link", target)
files[f"bin/python{ver}"] = exe.read_bytes()
files["bin/python3"] = ("link", f"python{ver}")
files["bin/python"] = ("link", f"python{ver}")
# Libraries the interpreter needs that a bare glibc base lacks (conda's python finds them in
# $PREFIX/lib through its RPATH; this one through LD_LIBRARY_PATH, which the test sets).
glibc = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "ld-linux", "linux-vdso")
for line in subprocess.run(["ldd", str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) >= 3 and parts[1] == "=>" and not parts[0].startswith(glibc):
        files[f"lib/{parts[0]}"] = Path(os.path.realpath(parts[2])).read_bytes()
for root, dirs, names in os.walk(stdlib):
    rel = Path(root).relative_to(stdlib)
    dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("config-"))
    for name in sorted(names):
        if rel.parts[:1] == ("lib-dynload",):
            if not name.startswith(tuple(m + "." for m in DYNLOAD)):
                continue
        elif not name.endswith(".py"):
            continue
        files[f"lib/python{ver}/{rel / name}".replace("/./", "/")] = (Path(root) / name).read_bytes()
files[f"lib/python{ver}/sitecustomize.py"] = (
    "import site, sys\n"
    f"site.addsitedir(sys.prefix + '/lib/python{ver}/site-packages')\n"
).encode()

write_channel(dest, "python", version, files)
print(version)
