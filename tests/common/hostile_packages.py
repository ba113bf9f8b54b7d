#!/usr/bin/env python3
"""Write a conda channel holding one hostile package (or two), for tests/hostile_packages.rs.

Usage: hostile_packages.py --list
       hostile_packages.py DEST CASE --canary DIR --secret FILE

DEST gets linux-64/ and noarch/ with repodata.json, as tests/common/conda_package.py lays them
out, but the packages are written raw: a tar entry and its info/paths.json entry may disagree,
names may hold `..`, be absolute or name whiteouts, and symlinks may point at host paths. Every
escape aims INTO the canary directory DIR (which must be absolute), never at a real system path:
relative escapes climb with more `..` than any directory is deep (`..` at `/` stays at `/`) and
then descend the canary's absolute path, so they land in DIR wherever they are resolved from.
FILE is the host secret (inside DIR) that the symlink cases point at.

Prints one JSON line describing the case: {"spec": the package to ask for, "packages": names of
which a refusal must mention one, "offending": paths of which a refusal must mention one}.
"""
import bz2
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

TIMESTAMP = 1735689600000
# More `..` than any test directory is deep: resolved from anywhere, they reach `/`.
CLIMB = "../" * 40


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class File:
    """A regular file in the archive; `paths` is its paths.json entry (None: not listed)."""

    def __init__(self, name, data, paths="auto", mode=0o644):
        self.name, self.data, self.mode = name, data, mode
        if paths == "auto":
            paths = {"_path": name, "path_type": "hardlink", "sha256": sha256(data),
                     "size_in_bytes": len(data)}
        self.paths = paths


class Link:
    """A symlink in the archive; listed as a softlink unless `paths` says otherwise."""

    def __init__(self, name, target, paths="auto"):
        self.name, self.target = name, target
        if paths == "auto":
            paths = {"_path": name, "path_type": "softlink"}
        self.paths = paths


class Listed:
    """A paths.json entry with no archive entry behind it."""

    def __init__(self, paths):
        self.name, self.paths = None, paths


def info_files(index, members):
    paths = [m.paths for m in members if m.paths is not None]
    return {
        "info/index.json": json.dumps(index, indent=1).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=1).encode(),
        "info/files": "".join(p["_path"] + "\n" for p in paths).encode(),
    }


def tar_bytes(info, members):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        # Python's tarfile writes TarInfo names verbatim: `..`, a leading `/`, `a//b`, `./x`.
        for name, data in info.items():
            entry = tarfile.TarInfo(name)
            entry.mtime, entry.size, entry.mode = TIMESTAMP // 1000, len(data), 0o644
            tar.addfile(entry, io.BytesIO(data))
        for m in members:
            if m.name is None:
                continue
            entry = tarfile.TarInfo(m.name)
            entry.mtime = TIMESTAMP // 1000
            if isinstance(m, Link):
                entry.type, entry.linkname, entry.mode = tarfile.SYMTYPE, m.target, 0o777
                tar.addfile(entry)
            else:
                entry.size, entry.mode = len(m.data), m.mode
                tar.addfile(entry, io.BytesIO(m.data))
    return raw.getvalue()


def zstd(data):
    return subprocess.run(["zstd", "-3", "-q", "-c"], input=data, check=True,
                          capture_output=True).stdout


def package_bytes(index, members, form=None):
    """The archive: a .tar.bz2 (form None), else a .conda as `form` shapes it."""
    info = info_files(index, members)
    if form is None:
        return bz2.compress(tar_bytes(info, members), 1)
    if form == "bz2-truncated":
        data = bz2.compress(tar_bytes(info, members), 1)
        return data[: len(data) // 2]
    dist = f"{index['name']}-{index['version']}-{index['build']}"
    info_zst, pkg_zst = zstd(tar_bytes(info, [])), zstd(tar_bytes({}, members))
    if form == "conda-truncated":
        pkg_zst = pkg_zst[: len(pkg_zst) // 2]
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        z.writestr(f"pkg-{dist}.tar.zst", pkg_zst)
        if form == "conda-two-pkg":
            z.writestr(f"pkg-{dist}-again.tar.zst", pkg_zst)
        if form == "conda-extra-member":
            z.writestr("evil.sh", b"#!/bin/sh\necho evil\n")
        z.writestr(f"info-{dist}.tar.zst", info_zst)
    return raw.getvalue()


def write_channel(dest, packages):
    """packages: (repodata name, index.json overrides, depends, members[, form]) tuples."""
    dest = Path(dest)
    records, conda_records = {}, {}
    for name, overrides, depends, members, *form in packages:
        form = form[0] if form else None
        index = {
            "name": name, "version": "1", "build": "0", "build_number": 0,
            "depends": list(depends), "license": "BSD-3-Clause", "subdir": "linux-64",
            "arch": "x86_64", "platform": "linux", "timestamp": TIMESTAMP,
        }
        data = package_bytes(dict(index, **overrides), members, form)
        is_conda = form is not None and form.startswith("conda")
        filename = f"{name}-1-0." + ("conda" if is_conda else "tar.bz2")
        (dest / "linux-64").mkdir(parents=True, exist_ok=True)
        (dest / "linux-64" / filename).write_bytes(data)
        (conda_records if is_conda else records)[filename] = dict(
            index, sha256=sha256(data), md5=hashlib.md5(data).hexdigest(), size=len(data))
    (dest / "noarch").mkdir(parents=True, exist_ok=True)
    for subdir, found, conda in (("linux-64", records, conda_records), ("noarch", {}, {})):
        repodata = {"info": {"subdir": subdir}, "packages": found, "packages.conda": conda}
        (dest / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1))


PAYLOAD = b"written by a hostile package\n"
# The name of bzip2's entry in the package cache, for the case that reaches into it.
BZIP2_CACHE_ENTRY = "bzip2-1.0.8-h4bc722e_7"


def into_canary(canary, name):
    """A relative path that lands on canary/name from wherever it is resolved."""
    return CLIMB + str(canary).lstrip("/") + "/" + name


def case_dotdot_path(canary, secret):
    path = into_canary(canary, "pwned-dotdot")
    return [("evil", {}, [], [File(path, PAYLOAD), File("share/hostile/ok", b"ok\n")])], \
        "evil", [path, "pwned-dotdot"]


def case_absolute_path(canary, secret):
    path = f"{canary}/pwned-absolute"
    return [("evil", {}, [], [File(path, PAYLOAD), File("share/hostile/ok", b"ok\n")])], \
        "evil", [path, path.lstrip("/")]


def case_dotdot_secret(canary, secret):
    # paths.json climbs to the host secret, with its sha256 and size: a check that reads the
    # listed path from the cache entry finds them right; linking it would replace the secret.
    data = Path(secret).read_bytes()
    path = CLIMB + str(secret).lstrip("/")
    listed = {"_path": path, "path_type": "hardlink", "sha256": sha256(data),
              "size_in_bytes": len(data)}
    return [("evil", {}, [], [File(path, PAYLOAD, paths=listed),
                              File("share/hostile/ok", b"ok\n")])], "evil", [path, "secret.json"]


def case_absolute_secret(canary, secret):
    data = Path(secret).read_bytes()
    listed = {"_path": str(secret), "path_type": "hardlink", "sha256": sha256(data),
              "size_in_bytes": len(data)}
    return [("evil", {}, [], [File(str(secret), PAYLOAD, paths=listed),
                              File("share/hostile/ok", b"ok\n")])], \
        "evil", [str(secret), str(secret).lstrip("/")]


def case_symlink_dir_route(canary, secret):
    # evil-a's directory symlink reaches the canary; evil-b's file goes through it.
    a = ("evil-a", {}, [], [Link("lib/sneaky", str(canary))])
    b = ("evil-b", {}, ["evil-a"], [File("lib/sneaky/pwned-route", PAYLOAD)])
    return [a, b], ["evil-b", "evil-a"], ["lib/sneaky"]


def case_symlink_dir_route_relative(canary, secret):
    # As symlink-dir-route, with a relative link that climbs out of wherever it is installed.
    a = ("evil-a", {}, [], [Link("lib/sneaky", CLIMB.rstrip("/") + str(canary))])
    b = ("evil-b", {}, ["evil-a"], [File("lib/sneaky/pwned-route-relative", PAYLOAD)])
    return [a, b], ["evil-b", "evil-a"], ["lib/sneaky"]


# The files conda-docker (or the installer it uses) writes into the prefix, or reads for the
# image's config.
META_NAMES = ["conda-meta/evil-1-0.json", "etc/conda/env_vars.d/evil.json",
              "conda-meta/explicit.txt", "conda-meta/history", "conda-meta/state"]


def case_host_symlink_meta(canary, secret):
    # Symlinks to the host secret where conda-docker writes or reads its own files.
    members = [Link(n, str(secret)) for n in META_NAMES]
    members.append(Link("share/hostile/relative-secret", CLIMB.rstrip("/") + str(secret)))
    return [("evil", {}, [], members)], "evil", META_NAMES + ["share/hostile/relative-secret"]


def case_host_symlink_env_vars(canary, secret):
    # Only the files activation variables are read from: read through the links, the secret
    # (JSON, with an `env_vars` map as conda-meta/state has) would become image variables.
    names = ["etc/conda/env_vars.d/evil.json", "conda-meta/state"]
    return [("evil", {}, [], [Link(n, str(secret)) for n in names])], "evil", names


def case_host_symlink_meta_hardlink(canary, secret):
    # The same symlinks, which paths.json calls regular (hardlink) files: once with the secret's
    # sha256 and size (what a checker that follows the link computes), once with none.
    data = Path(secret).read_bytes()
    members = []
    for i, n in enumerate(META_NAMES + ["share/hostile/secret-copy"]):
        listed = {"_path": n, "path_type": "hardlink"}
        if i % 2 == 0:
            listed.update(sha256=sha256(data), size_in_bytes=len(data))
        members.append(Link(n, str(secret), paths=listed))
    return [("evil", {}, [], members)], "evil", META_NAMES + ["share/hostile/secret-copy"]


def case_whiteout(canary, secret):
    return [("evil", {}, [], [File(".wh.something", b""), File("share/hostile/ok", b"ok\n")])], \
        "evil", [".wh.something"]


def case_opaque_whiteout(canary, secret):
    return [("evil", {}, [], [File("lib/.wh..wh..opq", b""), File("share/hostile/ok", b"ok\n")])], \
        "evil", ["lib/.wh..wh..opq"]


def case_name_mismatch(canary, secret):
    return [("evil", {"name": "other"}, [], [File("share/hostile/ok", b"ok\n")])], \
        "evil", ["other"]


def case_missing_file(canary, secret):
    listed = {"_path": "share/hostile/missing", "path_type": "hardlink",
              "sha256": sha256(PAYLOAD), "size_in_bytes": len(PAYLOAD)}
    return [("evil", {}, [], [Listed(listed), File("share/hostile/ok", b"ok\n")])], \
        "evil", ["share/hostile/missing"]


def case_empty_component(canary, secret):
    return [("evil", {}, [], [File("share//hostile-empty", PAYLOAD)])], \
        "evil", ["share//hostile-empty"]


def case_dot_component(canary, secret):
    return [("evil", {}, [], [File("./share/hostile-dot", PAYLOAD)])], \
        "evil", ["./share/hostile-dot"]


def case_inner_dotdot(canary, secret):
    # A `..` that stays inside the prefix is still not a path a package may name.
    return [("evil", {}, [], [File("share/../hostile-inner", PAYLOAD)])], \
        "evil", ["share/../hostile-inner"]


def case_cache_poison(canary, secret):
    # One `..` from the package's cache entry is bzip2's entry, built clean right after.
    path = f"../{BZIP2_CACHE_ENTRY}/bin/bzip2"
    return [("evil", {}, [], [File(path, b"#!/bin/sh\necho poisoned\n", mode=0o755),
                              File("share/hostile/ok", b"ok\n")])], \
        "evil", [path]


def case_tar_dotdot_unlisted(canary, secret):
    # Archive entries paths.json does not list: one climbing into the canary, one into the cache.
    return [("evil", {}, [], [
        File(into_canary(canary, "pwned-unlisted"), PAYLOAD, paths=None),
        File(f"../{BZIP2_CACHE_ENTRY}/bin/bzip2", b"#!/bin/sh\necho poisoned\n", paths=None,
             mode=0o755),
        File(f"{canary}/pwned-unlisted-absolute", PAYLOAD, paths=None),
        File("share/hostile/ok", b"ok\n")])], "evil", ["pwned-unlisted"]


def case_bigger_than_declared(canary, secret):
    # A file longer than paths.json's size_in_bytes (as a sparse-file bomb would be).
    data = PAYLOAD * 64
    listed = {"_path": "share/hostile/grown", "path_type": "hardlink",
              "sha256": sha256(PAYLOAD), "size_in_bytes": len(PAYLOAD)}
    return [("evil", {}, [], [File("share/hostile/grown", data, paths=listed),
                              File("share/hostile/ok", b"ok\n")])], \
        "evil", ["share/hostile/grown"]


def case_sha256_mismatch(canary, secret):
    # A file whose bytes are not what paths.json's sha256 records (its size agrees).
    listed = {"_path": "share/hostile/swapped", "path_type": "hardlink",
              "sha256": sha256(b"x" * len(PAYLOAD)), "size_in_bytes": len(PAYLOAD)}
    return [("evil", {}, [], [File("share/hostile/swapped", PAYLOAD, paths=listed),
                              File("share/hostile/ok", b"ok\n")])], \
        "evil", ["share/hostile/swapped"]


def case_tar_unlisted(canary, secret):
    # An archive entry paths.json does not list, under a plain name: it never reaches the image.
    return [("evil", {}, [], [File("share/hostile/unlisted", PAYLOAD, paths=None),
                              File("share/hostile/ok", b"ok\n")])], \
        "evil", ["share/hostile/unlisted"]


def conda_case(form, offending, members=None):
    """A .conda case shaped by `form`, refused naming one of `offending`."""
    def case(canary, secret):
        listed = members or [File("share/hostile/ok", b"ok\n")]
        return [("evil", {}, [], listed, form)], "evil", offending
    return case


# Incompressible bytes, so that half the compressed stream ends inside this file.
NOISE = hashlib.sha256(b"noise").digest() * 8192


def case_sparse_bomb(canary, secret):
    # 256 MiB of zeros, a few hundred kB compressed, declared as 29 bytes.
    listed = {"_path": "share/hostile/bomb", "path_type": "hardlink",
              "sha256": sha256(PAYLOAD), "size_in_bytes": len(PAYLOAD)}
    bomb = File("share/hostile/bomb", bytes(256 << 20), paths=listed)
    return [("evil", {}, [], [bomb, File("share/hostile/ok", b"ok\n")], "conda")], \
        "evil", ["share/hostile/bomb"]


def case_bz2_truncated(canary, secret):
    return [("evil", {}, [], [File("share/hostile/noise", NOISE), File("share/hostile/ok", b"ok\n")],
             "bz2-truncated")], "evil", ["share/hostile/noise", "cut short"]


CASES = {
    "dotdot-path": case_dotdot_path,
    "absolute-path": case_absolute_path,
    "dotdot-secret": case_dotdot_secret,
    "absolute-secret": case_absolute_secret,
    "symlink-dir-route": case_symlink_dir_route,
    "symlink-dir-route-relative": case_symlink_dir_route_relative,
    "host-symlink-meta": case_host_symlink_meta,
    "host-symlink-env-vars": case_host_symlink_env_vars,
    "host-symlink-meta-hardlink": case_host_symlink_meta_hardlink,
    "whiteout": case_whiteout,
    "opaque-whiteout": case_opaque_whiteout,
    "name-mismatch": case_name_mismatch,
    "missing-file": case_missing_file,
    "empty-component": case_empty_component,
    "dot-component": case_dot_component,
    "inner-dotdot": case_inner_dotdot,
    "cache-poison": case_cache_poison,
    "tar-dotdot-unlisted": case_tar_dotdot_unlisted,
    "bigger-than-declared": case_bigger_than_declared,
    "sha256-mismatch": case_sha256_mismatch,
    "tar-unlisted": case_tar_unlisted,
    "conda-two-pkg": conda_case("conda-two-pkg", ["pkg-*.tar.zst"]),
    "conda-extra-member": conda_case("conda-extra-member", ["evil.sh"]),
    "conda-truncated": conda_case("conda-truncated", ["share/hostile/noise", "cut short"],
                                  [File("share/hostile/noise", NOISE)]),
    "bz2-truncated": case_bz2_truncated,
    "sparse-bomb": case_sparse_bomb,
}


def main(argv):
    if argv == ["--list"]:
        print("\n".join(CASES))
        return 0
    args = {"--canary": None, "--secret": None}
    positional = []
    it = iter(argv)
    for a in it:
        if a in args:
            args[a] = next(it, None)
        else:
            positional.append(a)
    if len(positional) != 2 or None in args.values() or positional[1] not in CASES:
        print(__doc__, file=sys.stderr)
        print("cases: " + ", ".join(CASES), file=sys.stderr)
        return 2
    dest, case = positional
    canary, secret = Path(args["--canary"]), Path(args["--secret"])
    if not canary.is_absolute() or not secret.is_absolute():
        print("--canary and --secret must be absolute paths", file=sys.stderr)
        return 2
    packages, named, offending = CASES[case](canary, secret)
    named = [named] if isinstance(named, str) else named
    write_channel(dest, packages)
    # The spec is the first name: the package that is asked for.
    print(json.dumps({"spec": named[0], "packages": named, "offending": offending}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
