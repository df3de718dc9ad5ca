"""What the steps of one run share (`RunState`): the lab, the guards, the journal, the work left
running in the background and the faults still to undo; and `undo_fault`.

The activities act on a RunState, so this module imports no activity (nor the loaded experiment
at run time: `Experiment` is only a type here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from toolkit.chaos.fault import Fault
from toolkit.errors import KnightError
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadResult, stop_load

from .journal import Journal

if TYPE_CHECKING:
    from .model import Experiment

__all__ = ["CLOSE_TIMEOUT_S", "RunState", "close_market", "undo_fault"]

#: How long the market may take to close: every open load generator stopped and accounted for.
CLOSE_TIMEOUT_S = 60.0


@dataclass
class RunState:
    """What the steps of one run share: the lab, the guards, the journal, background work."""

    lab: Lab
    experiment: Experiment
    guards: GuardSet
    journal: Journal
    say: Callable[[str], None]
    stop: threading.Event = field(default_factory=threading.Event)
    background: list[threading.Thread] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)
    deploying: str | None = None
    #: Loads that run until the market closes (an `open` without a duration): their
    #: load generators' prefixes and threads, ended by `close_market`.
    open_loads: dict[str, threading.Thread] = field(default_factory=dict)
    #: "method" or "rollbacks": a kill switch thrown by a rollback is cleanup, not a response.
    phase: str = "method"

    def event(self, kind: str, node: str | None, detail: str) -> None:
        """Record it in the journal and show it: nothing is shown that is not recorded."""
        ev = self.journal.event(kind, node, detail)
        self.say(f"{ev.t:7.2f}s {kind}{' ' + node if node else ''}: {detail}")

    def sleep(self, seconds: float) -> bool:
        """Wait, but stop early on an abort; False when aborted."""
        return not self.stop.wait(seconds)

    def in_background(self, name: str, work: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=work, name=name, daemon=True)
        thread.start()
        self.background.append(thread)
        return thread

    def collect(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.background:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.background = [t for t in self.background if t.is_alive()]


def undo_fault(run: RunState, fault: Fault) -> None:
    """Undo `fault`, with a journal event either way."""
    try:
        fault.undo()
        run.event("fault_undone", fault.node, fault.NAME)
    except Exception as exc:  # a Docker error must not stop the journal from being written
        run.event("error", fault.node, f"undo {fault.NAME}: {exc}")


def close_market(run: RunState) -> bool:
    """End every load that runs until the market closes, and wait for their accounts; False
    when the market was not open. A load generator may not have started yet when this is
    called, so it is asked to stop until its thread is done (its account then comes in as for
    any load)."""
    if not run.open_loads:
        return False
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    pending = dict(run.open_loads)
    while pending and time.monotonic() < deadline:
        for prefix, thread in list(pending.items()):
            stop_load(run.lab, prefix)
            thread.join(timeout=0.5)
            if not thread.is_alive():
                del pending[prefix]
    run.open_loads.clear()
    if pending:
        raise KnightError(f"the market did not close: {', '.join(pending)} still sending")
    return True
