"""Structured logs: one JSON object per line on stdout, `{"ts", "component", "node", "level", "event",
...}`, the shape routerd and the venue write too (each has its own copy of the writer).
Lifecycle events and errors only; anything per order is summarised, never logged one by one."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["Log"]


class Log:
    def __init__(self, node: str, stream: TextIO | None = None) -> None:
        self.node = node
        self._stream = stream
        self._lock = threading.Lock()  # the admin thread logs too
        self._quiet_until: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def emit(self, level: str, event: str, **fields: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "component": "router",
            "node": self.node,
            "level": level,
            "event": event,
            **fields,
        }
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        stream = self._stream or sys.stdout
        with self._lock:
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed stdout must not take the router down

    def info(self, event: str, **fields: Any) -> None:
        self.emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.emit("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.emit("error", event, **fields)

    def throttled(self, level: str, event: str, interval_s: float = 5.0, **fields: Any) -> None:
        """At most one `event` per interval; the next one says how many were left out."""
        now = time.monotonic()
        with self._lock:
            if now < self._quiet_until.get(event, 0.0):
                self._suppressed[event] = self._suppressed.get(event, 0) + 1
                return
            self._quiet_until[event] = now + interval_s
            suppressed = self._suppressed.pop(event, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        self.emit(level, event, **fields)
