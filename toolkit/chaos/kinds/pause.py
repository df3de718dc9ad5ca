"""pause: every process of the node is frozen (cgroup freezer): it holds its connections and
answers nothing, the way a server stuck in a long GC pause or swapping looks to its peers."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Pause(Fault):
    NAME = "pause"
    SUMMARY = "container paused"
    # Thawed before any other kind is undone: the others exec into the container (a delay's
    # loop is killed from inside), and Docker cannot exec into a frozen one.
    HALT_RANK = 0

    def inject(self) -> None:
        self.lab.engine.pause(self.container)

    def undo(self) -> None:
        if self.lab.engine.state(self.container) == "paused":
            self.lab.engine.unpause(self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: lab.engine.unpause(c) or True, states=("paused",), role=None)
