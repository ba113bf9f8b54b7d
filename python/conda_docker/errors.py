"""The exceptions conda-docker raises: every one is a :class:`CondaDockerError`.

Each carries the library's message followed by its causes (``caused by: ...`` lines), as the
command line prints them.
"""

__all__ = [
    "CondaDockerError",
    "SolveError",
    "RegistryError",
    "Unauthorized",
    "NotFound",
    "InvalidImage",
    "Cancelled",
]


class CondaDockerError(Exception):
    """Anything conda-docker could not do (bad arguments, unreadable files, outputs...)."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class SolveError(CondaDockerError):
    """The package specs do not parse, cannot be satisfied, or repodata cannot be read."""


class RegistryError(CondaDockerError):
    """A registry could not be reached or answered something unexpected."""


class Unauthorized(RegistryError):
    """A registry refused the credentials, or needs some."""


class NotFound(RegistryError):
    """The image, tag or platform asked for is not there (the message lists what is)."""


class InvalidImage(CondaDockerError):
    """An archive, layout or blob is not a valid image, or its bytes do not match its digest."""


class Cancelled(CondaDockerError, KeyboardInterrupt):
    """The call was interrupted (Ctrl-C); nothing was written.

    Also a :class:`KeyboardInterrupt`, so code that stops on Ctrl-C keeps doing so.
    """
