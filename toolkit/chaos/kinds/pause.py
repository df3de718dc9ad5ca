"""pause: every process of the node is frozen (cgroup freezer): it holds its connections and
answers nothing, the way a server stuck in a long GC pause or swapping looks to its peers."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Pause(Fault):
    NAME = "pause"
    SUMMARY = "container paused"

    def inject(self) -> None:
        self.container.pause()

    def undo(self) -> None:
        self.container.reload()
        if self.container.status == "paused":
            self.container.unpause()

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: c.unpause() or True, states=("paused",), role=None)
