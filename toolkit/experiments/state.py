"""What the steps of one run share (`RunState`): the lab, the guards, the journal, the work left
running in the background and the faults still to undo; and `undo_fault`.

A RunState is the recorder of knight's own run (toolkit/experiments/context.py): the activities
are plain functions that tell it what they did, and it puts that in the journal. This module
imports no activity (nor the loaded experiment at run time: `Experiment` is only a type here).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.chaos.fault import Fault
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadResult

from .context import Context, Recorder, configuration_for
from .journal import Journal

if TYPE_CHECKING:
    from .model import Experiment

__all__ = ["RunState", "undo_fault"]


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
    #: "method" or "rollbacks": a kill switch thrown by a rollback is cleanup, not a response.
    phase: str = "method"

    @property
    def configuration(self) -> dict[str, Any]:
        """What the run's activities are called with: its lab and its guards."""
        return configuration_for(self.lab, self.guards)

    def context(self) -> Context:
        """The context the run binds for its activities: its lab, its guards, its stop event,
        and itself as the recorder."""
        return Context(self.lab, self.guards, self.stop, self)

    def event(self, kind: str, node: str | None, detail: str) -> None:
        """Record it in the journal and show it: nothing is shown that is not recorded."""
        ev = self.journal.event(kind, node, detail)
        self.say(f"{ev.t:7.2f}s {kind}{' ' + node if node else ''}: {detail}")

    def begins(self, step: str, node: str | None = None) -> None:
        """A step begins: recorded (the live view shows the step under way), not said (the
        step's line comes when it is done)."""
        self.journal.event("step", node, step)

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

    # -- what the activities tell the run (context.Recorder) ---------------------------------
    def mark_fault(self) -> None:
        """The first flag turned on or fault injected: times to detect and kill count from it."""
        if self.journal.fault_t is None:
            self.journal.mark_fault()

    def killed(self) -> None:
        if self.phase == "method":
            self.kill_times.append(self.journal.elapsed())

    def until_end(self, fault: Fault) -> None:
        self.faults.append(fault)

    def load_account(self, what: str, result: LoadResult) -> None:
        self.loads.append(result)
        self.event(
            f"{what}_done",
            None,
            f"{result.sent} parent orders: {result.filled} filled, {result.cancelled} "
            f"cancelled, {result.rejected} rejected, {result.working} working, "
            f"{result.unanswered} unanswered",
        )

    def load_error(self, what: str, error: str) -> None:
        self.load_errors.append(error)
        self.event("error", None, f"{what}: {error}")


def undo_fault(recorder: Recorder, fault: Fault) -> None:
    """Undo `fault`, with an event either way (in the journal, for knight's run)."""
    try:
        fault.undo()
        recorder.event("fault_undone", fault.node, fault.NAME)
    except Exception as exc:  # a Docker error must not stop the journal from being written
        recorder.event("error", fault.node, f"undo {fault.NAME}: {exc}")
