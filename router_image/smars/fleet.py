"""The fleet manifest the deploy writes to every node (/etc/smars/fleet.json): what the fleet
should run. The router reports whether its running tree matches it; fencing comes later."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["FleetManifest"]


class FleetManifest:
    """The manifest as last read (None when absent or unreadable) and the error, if any."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] | None = None
        self.error: str | None = None

    def load(self) -> bool:
        self.manifest, self.error = None, None
        try:
            doc = json.loads(self.path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return True  # no manifest yet: nothing to match
        except (OSError, ValueError, RecursionError) as e:
            self.error = f"{self.path}: unreadable: {e}"
            return False
        if not isinstance(doc, dict):
            self.error = f"{self.path}: expected a JSON object"
            return False
        self.manifest = doc
        return True

    def status(self, running_tree: str) -> dict[str, Any]:
        """`{"manifest", "match"}` for /version: match is null without a manifest."""
        if self.manifest is None:
            return {"manifest": None, "match": None}
        return {"manifest": self.manifest, "match": self.manifest.get("tree") == running_tree}
