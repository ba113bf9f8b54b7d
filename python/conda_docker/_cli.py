"""The ``conda-docker`` command of the wheel: the same command line, run in this process."""

import sys


def main() -> None:
    from conda_docker import _native

    try:
        status = _native.run_cli(sys.argv[1:])
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    main()
