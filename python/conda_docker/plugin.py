"""conda's plugin for ``conda docker ...`` (conda >= 23.7, entry point group ``conda``).

conda finds it through the ``conda`` entry point of this package and lists ``docker`` in
``conda --help``; ``conda docker build ...`` then runs the same command line as
``conda-docker build ...``, in conda's process. Without conda installed, importing this module
does nothing (the ``conda-docker`` command works on its own, and conda's older lookup of a
``conda-docker`` executable on PATH finds it too).
"""

from __future__ import annotations

from typing import Iterator, Sequence

SUMMARY = "Build minimal Docker/OCI images from conda environments, without a Docker daemon."


def run(args: Sequence[str]) -> int:
    """Runs ``conda-docker`` with ``args`` (what follows ``conda docker``); its exit status."""
    from conda_docker import _native

    try:
        return _native.run_cli(list(args))
    except KeyboardInterrupt:
        return 130


try:  # conda's plugin API, when conda is there
    from conda import plugins as _plugins
except ImportError:  # pragma: no cover - no conda: nothing to register
    _plugins = None

if _plugins is not None:

    @_plugins.hookimpl
    def conda_subcommands() -> Iterator[object]:
        """The ``docker`` subcommand."""
        yield _plugins.CondaSubcommand(name="docker", summary=SUMMARY, action=run)
