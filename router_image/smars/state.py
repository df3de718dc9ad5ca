"""The kill switch and the intake switch of the node, persisted so that they survive a re-exec
and a restart (/var/lib/smars/state.json, replaced atomically)."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["ACTIVE", "KILLED", "OPEN", "PAUSED", "State"]

ACTIVE, KILLED = "active", "killed"
OPEN, PAUSED = "open", "paused"


class State:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.trading = ACTIVE
        self.intake = OPEN
        # A release switch in progress pauses intake without persisting it: the next process
        # must come up with the operator's intake state, not the switch's.
        self.switching = False
        #: This process came up from a guarded flip the deploy has not confirmed yet (the
        #: pending marker): it takes no order until the fleet is verified and intake is opened.
        self.unconfirmed = False
        #: Why this node may not trade (fencing: its running tree is not the fleet manifest's);
        #: None when it may. Worked out from the manifest, never persisted.
        self.fenced: str | None = None
        self.error: str | None = None

    @property
    def killed(self) -> bool:
        return self.trading == KILLED

    @property
    def accepting(self) -> bool:
        return self.intake == OPEN and not self.switching and not self.unconfirmed

    @property
    def effective_intake(self) -> str:
        return OPEN if self.accepting else PAUSED

    def load(self) -> None:
        """Read the file; absent means a fresh node (active, open). An unreadable file fails
        closed: the kill switch may have been on, so trading comes up killed."""
        try:
            doc = json.loads(self.path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as e:
            self._fail_closed(f"{self.path}: unreadable: {e}")
            return
        if (
            not isinstance(doc, dict)
            or doc.get("trading") not in (ACTIVE, KILLED)
            or doc.get("intake") not in (OPEN, PAUSED)
        ):
            self._fail_closed(f"{self.path}: expected trading active|killed, intake open|paused")
            return
        self.trading, self.intake = doc["trading"], doc["intake"]

    def set(self, *, trading: str | None = None, intake: str | None = None) -> None:
        """Change and persist; the change holds in memory even if the file cannot be written
        (OSError is raised for the caller to report)."""
        self.trading = trading or self.trading
        self.intake = intake or self.intake
        self.save()

    def save(self) -> None:
        data = json.dumps({"trading": self.trading, "intake": self.intake}) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _fail_closed(self, error: str) -> None:
        self.error = error
        self.trading = KILLED
