"""Every alert (and every kill) as one JSON line with its timestamps: the monitor's own record,
kept in both modes so a journal can say when an alert fired even when nobody acted on it."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolkit.monitor.alert import Alert

__all__ = ["Record"]


class Record:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, kind: str, doc: dict[str, Any]) -> None:
        line = json.dumps({"kind": kind, **doc}, sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def handle(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            self.write("alert", alert.to_json())

    def close(self) -> None:
        pass

    def read(self) -> list[dict[str, Any]]:
        """Every line written so far (for tests and the report)."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
