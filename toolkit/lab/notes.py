"""The lab's run notes: the little a step of a run leaves for a later step that may run in
another process (the release being deployed, loads that run until the market closes, load
generators that ended without an account). One JSON file per lab (`Settings.notes_path`),
replaced whole on every change; a new run starts it afresh.

What the lab itself keeps (faults, in Docker's state; load accounts, in the client container;
the venue's run) is never copied here: this holds only what the lab cannot tell.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import suppress
from typing import Any

from toolkit.errors import LabError
from toolkit.settings import Settings

from .lab import Lab
from .load import clear_loads

__all__ = ["begin_run", "clear_notes", "read_notes", "update_notes"]

#: One writer at a time within a process (a background load's thread and the next step).
_writing = threading.Lock()


def read_notes(settings: Settings) -> dict[str, Any]:
    """The lab's notes; empty when there are none."""
    try:
        doc = json.loads(settings.notes_path.read_text() or "{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LabError(f"{settings.notes_path}: unreadable run notes ({exc})") from None
    return doc if isinstance(doc, dict) else {}


def update_notes(settings: Settings, **changes: Any) -> dict[str, Any]:
    """Change some notes (a value of None removes one) and write them back whole."""
    with _writing:
        notes = read_notes(settings) | changes
        notes = {k: v for k, v in notes.items() if v is not None}
        path = settings.notes_path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(notes, fh)
        os.replace(tmp, path)
        return notes


def clear_notes(settings: Settings) -> None:
    """Forget every note: a new run begins."""
    with suppress(FileNotFoundError):
        settings.notes_path.unlink()


def begin_run(lab: Lab) -> list[str]:
    """A new run of the lab begins: no load generator still sending, no account of an earlier
    run's loads, no notes. The prefixes of the loads that were still sending."""
    # A lab without its client (down, or half up) has no load to end: the reset brings it up.
    stopped = clear_loads(lab) if lab.has_client() else []
    clear_notes(lab.settings)
    return stopped
