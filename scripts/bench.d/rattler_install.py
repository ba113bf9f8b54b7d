#!/usr/bin/env python3
"""What a pixi user runs today, minus pixi's CLI: solve SPECS against channels (local directories or URLs) with
py-rattler and install them into PREFIX (patched for /opt/conda, as the image will have it).

    rattler_install.py --cache-dir DIR --prefix DIR -c CHANNEL [-c CHANNEL...] [--print-urls] SPEC...

An existing PREFIX is updated (what `pixi install` does on a second run).
"""
import argparse
import asyncio
import os
import pathlib
import sys

import rattler


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--target-prefix", default="/opt/conda")
    ap.add_argument("-c", "--channel", action="append", required=True)
    ap.add_argument("--print-urls", action="store_true", help="print the solved archives' URLs")
    ap.add_argument("specs", nargs="+")
    a = ap.parse_args()
    channels = [rattler.Channel(c if "://" in c else pathlib.Path(c).resolve().as_uri())
                for c in a.channel]
    cache = pathlib.Path(a.cache_dir)
    gateway = rattler.Gateway(cache_dir=cache / "repodata")
    records = await rattler.solve(
        sources=channels, specs=a.specs, gateway=gateway, platforms=["linux-64", "noarch"],
        virtual_packages=[rattler.GenericVirtualPackage(rattler.PackageName("__glibc"),
                                                        rattler.Version("2.36"), rattler.BuildString("0")),
                          rattler.GenericVirtualPackage(rattler.PackageName("__unix"),
                                                        rattler.Version("0"), rattler.BuildString("0")),
                          rattler.GenericVirtualPackage(rattler.PackageName("__linux"),
                                                        rattler.Version("6.1"), rattler.BuildString("0"))])
    await rattler.install(records, target_prefix=a.prefix, cache_dir=cache / "pkgs",
                          platform=rattler.Platform("linux-64"), execute_link_scripts=False,
                          show_progress=False, alternative_target_prefix=a.target_prefix)
    if a.print_urls:
        for r in records:
            print(r.url)


asyncio.run(main())
sys.stdout.flush()
# py-rattler 0.28 can abort in interpreter finalization (PyGILState_Release) when a tokio thread
# outlives the interpreter; the work is done and flushed by now, so leave without finalizing.
os._exit(0)
