"""Ctrl-C while knight cleans up: the clean-up must not be cut short, so the interrupt is noted
instead of raised, and the playbooks the clean-up runs are not cancelled by it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["deferred", "deferring"]

_depth = 0


def deferring() -> bool:
    """Whether a Ctrl-C is being deferred now (the playbook runner then does not cancel on it)."""
    return _depth > 0


@contextmanager
def deferred(on_interrupt: Callable[[], None]) -> Iterator[None]:
    """While inside, a Ctrl-C (SIGINT) calls `on_interrupt` instead of raising KeyboardInterrupt.
    Only the main thread can change signal handlers; elsewhere this changes nothing."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda _n, _f: on_interrupt())
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        signal.signal(signal.SIGINT, previous)
