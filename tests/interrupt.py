"""Ctrl-C in a test, as a user at a terminal presses it.

A shell without job control starts a background job (`make test &`) with SIGINT ignored, and every
process under it inherits that disposition through fork and exec: a SIGINT a test sends then does
nothing, and a test of what Ctrl-C does fails for a reason that is not the code's. A test that
presses Ctrl-C therefore gives the process it presses it on the disposition a terminal's
foreground job has."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


def at_a_terminal() -> None:
    """`preexec_fn` of a child a test interrupts: SIGINT back to its default, which a Python
    program then turns into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def ctrl_c_raises() -> Iterator[None]:
    """In this process: SIGINT raises KeyboardInterrupt inside the block, as it does in a
    foreground Python program, and gets its earlier handler back after it."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
