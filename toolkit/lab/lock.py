"""The lab lock: one mutating operation (a deploy, a rollback, an experiment, `lab up`/`down`) at a
time on a lab. A second one, from another process, is refused in one line before it changes
anything, naming what holds the lab.

An fcntl lock on a file (`Settings.lock_path`): the kernel drops it when its holder ends, however
it ends, so a crash never leaves the lab locked. Within one process the lock is re-entrant (an
experiment deploys; `reset` brings the lab up): nesting only counts. The kill switch is never
behind it: stopping the fleet must work while anything else runs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import LabError

__all__ = ["LabBusy", "exclusive", "holder"]


class LabBusy(LabError):
    """Another process runs a mutating operation on the lab."""


@dataclass
class _Held:
    fd: int
    depth: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def holder(path: Path) -> dict[str, object] | None:
    """What the lock file says of its holder (`what`, `pid`, `host`, `since`), if it says."""
    try:
        doc = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _open(path: Path) -> int:
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Shared like the temporary folder: any user's knight may lock its own labs here.
        with suppress(OSError):
            path.parent.chmod(0o1777)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: locking needs reading only
        return os.open(path, os.O_RDONLY)


def _busy(lab: str, path: Path, what: str) -> LabBusy:
    who = holder(path)
    if not who:
        return LabBusy(f"lab {lab!r} is busy: another knight process holds {path}; {what} refused")
    stamp = who.get("since")
    since = time.strftime("%H:%M:%S", time.localtime(stamp)) if isinstance(stamp, float) else "?"
    return LabBusy(
        f"lab {lab!r} is busy: {who.get('what')} (pid {who.get('pid')} on {who.get('host')}, "
        f"since {since}); {what} refused, try again once it ends"
    )


def _acquire(lab: str, path: Path, what: str) -> int:
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise _busy(lab, path, what) from None
        raise LabError(f"cannot lock lab {lab!r} ({path}): {exc.strerror}") from None
    stamp = {"what": what, "pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(stamp) + "\n").encode(), 0)
    except OSError:
        pass  # read-only (another user's file): the lock holds all the same, unnamed
    return fd


def _release(fd: int) -> None:
    with suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing the last descriptor drops the lock


@contextmanager
def exclusive(lab: str, path: Path, what: str) -> Iterator[None]:
    """Hold `lab`'s lock while the block runs; LabBusy at once when another process holds it."""
    key = path.resolve()
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
        else:
            _held[key] = _Held(_acquire(lab, key, what), 1)
    try:
        yield
    finally:
        with _guard:
            held = _held[key]
            held.depth -= 1
            if held.depth == 0:
                del _held[key]
                _release(held.fd)
