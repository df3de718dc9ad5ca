"""`JournalRun`: one experiment journal as the report read it from disk, its path and its document,
with the keys the report groups and orders runs by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.experiments.journal import guard_label

__all__ = ["JournalRun"]


@dataclass(frozen=True)
class JournalRun:
    """One journal read from disk: `path` (its stem names the run's page and plot) and `doc`."""

    path: Path
    doc: dict[str, Any]

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def guards(self) -> str:
        """The guard set's label: "none", "all", "atomic", "atomic+risk", ..."""
        return guard_label(self.doc.get("guards") or {})

    @property
    def key(self) -> tuple[str, str, str]:
        """(experiment, mode, guards): the report keeps the latest run per key."""
        return (str(self.doc["experiment"]), str(self.doc["mode"]), self.guards)

    @property
    def order(self) -> tuple[str, str]:
        """Sorts runs oldest first: by start time, then by file name."""
        return (str(self.doc.get("start") or ""), self.path.name)
