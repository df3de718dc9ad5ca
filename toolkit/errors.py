"""The toolkit's exceptions: one base class, so the CLI can turn any of them into one clear line."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DockerUnavailable",
    "KnightError",
    "LabError",
    "ReleaseError",
]


class KnightError(Exception):
    """Base of every error a user can cause or meet; the CLI prints it and exits non-zero."""

    exit_code = 1


class ConfigError(KnightError):
    """A file the user wrote (catalog, experiment, flags) is wrong; says which file and line."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.message = message
        self.path = path
        self.line = line


class DockerUnavailable(KnightError):
    """The Docker engine cannot be reached."""


class LabError(KnightError):
    """The lab is missing, partial, or a node does not answer as it should."""


class ReleaseError(KnightError):
    """A release is unknown, or its artifact is missing or does not match its manifest."""
