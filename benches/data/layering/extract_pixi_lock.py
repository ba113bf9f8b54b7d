#!/usr/bin/env python3
"""Reduce a git history of pixi.lock to a compact package-list history.

Usage: extract_pixi_lock.py GIT_DIR [ENV] [PLATFORM] > out.tsv  (then gzip -9)

For every commit touching pixi.lock (oldest first) it takes the conda packages of
one environment (default: `default`) on one platform (default: linux-64) and writes

    @ <commit> <date>
    <name>\t<version>\t<build>\t<size or ->\t<comma-separated dependency names>

Consecutive snapshots with the same package set are written once (they are updates
that change nothing). PyPI entries are skipped. Understands lock-file format
versions 1 (the `metadata:`/`package:` layout) through 7.
"""
import subprocess
import sys

import yaml

try:
    Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    Loader = yaml.SafeLoader


def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True,
                          capture_output=True).stdout


def split_filename(url):
    base = url.rsplit("/", 1)[-1]
    for ext in (".conda", ".tar.bz2"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    name, version, build = base.rsplit("-", 2)
    return name, version, build


def dep_names(depends):
    if not depends:
        return []
    if isinstance(depends, dict):
        return sorted(depends)
    return [str(d).split()[0] for d in depends]


def snapshot(doc, env, platform):
    """[(name, version, build, size, [deps])] for one env/platform, or None."""
    version = doc.get("version", 1)
    out = []
    if "package" in doc:  # formats 1-3: one flat list, no environments
        for p in doc["package"]:
            if p.get("platform") != platform:
                continue
            if p.get("manager", p.get("kind", "conda")) != "conda":
                continue
            deps = p.get("depends", p.get("dependencies"))
            out.append((p["name"], str(p["version"]), p.get("build") or split_filename(p["url"])[2],
                        p.get("size"), dep_names(deps)))
        return out or None
    envs = doc.get("environments") or {}
    if env not in envs:
        return None
    plat_key = platform
    if version >= 7:  # platforms have names; the subdir is `subdir`, else the name
        for pl in doc.get("platforms") or []:
            if (pl.get("subdir") or pl.get("name")) == platform:
                plat_key = pl["name"]
                break
    urls = [e["conda"] for e in (envs[env].get("packages") or {}).get(plat_key) or []
            if "conda" in e]
    if not urls:
        return None
    records = {}
    for p in doc.get("packages") or []:
        if version >= 6:
            url = p.get("conda")
        else:
            url = p.get("url") if p.get("kind", "conda") == "conda" else None
        if url:
            records.setdefault(url, p)
    for url in urls:
        p = records.get(url, {})
        name, ver, build = split_filename(url)
        name = p.get("name", name)
        ver = str(p.get("version", ver))
        build = p.get("build", build)
        out.append((name, ver, build, p.get("size"), dep_names(p.get("depends"))))
    return out


def main():
    git_dir = sys.argv[1]
    env = sys.argv[2] if len(sys.argv) > 2 else "default"
    platform = sys.argv[3] if len(sys.argv) > 3 else "linux-64"
    log = git(git_dir, "log", "--reverse", "--format=%H %cs", "--", "pixi.lock").decode().split("\n")
    last = None
    kept = skipped = 0
    for line in log:
        if not line.strip():
            continue
        commit, date = line.split()
        try:
            text = git(git_dir, "show", f"{commit}:pixi.lock")
        except subprocess.CalledProcessError:
            continue  # the file was deleted in this commit
        try:
            doc = yaml.load(text, Loader=Loader)
        except yaml.YAMLError:
            skipped += 1
            continue
        snap = snapshot(doc, env, platform) if isinstance(doc, dict) else None
        if not snap:
            skipped += 1
            continue
        snap.sort()
        key = [(n, v, b) for n, v, b, _, _ in snap]
        if key == last:
            continue
        last = key
        kept += 1
        print(f"@ {commit} {date}")
        for n, v, b, s, d in snap:
            print(f"{n}\t{v}\t{b}\t{'-' if s is None else s}\t{','.join(d)}")
    print(f"{kept} snapshots kept, {skipped} commits without env {env!r} on {platform}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
