"""The one exception base of the router: a SmarsError stops the node at startup with one line."""

__all__ = ["ConfigError", "ReleaseError", "SmarsError"]


class SmarsError(Exception):
    """A problem an operator can fix (a bad file, a broken release tree); never a code bug."""


class ConfigError(SmarsError):
    """router.json is unreadable, has an unknown key or a value of the wrong type."""


class ReleaseError(SmarsError):
    """The release tree the node runs from is incomplete or its release.json is invalid."""
