"""The seed's entry point (`conda_docker.cli:main`): the `conda-docker` command line."""

import sys
from typing import List, Optional

from conda_docker._cli import main

__all__ = ["cli", "main"]


def cli(args: Optional[List[str]] = None) -> int:
    """Runs the command line with ``args`` (default: ``sys.argv[1:]``) in this process and
    returns its exit status."""
    from conda_docker import _native

    return _native.run_cli(list(sys.argv[1:] if args is None else args))
