"""pause: every process of the node is frozen (cgroup freezer): it holds its connections and
answers nothing, the way a server stuck in a long GC pause or swapping looks to its peers. On a
fleet reached through an inventory: the router alone is frozen (SIGSTOP from routerd, asked over
ssh; sshd must answer for the undo), and thawed by SIGCONT."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair, repair_over_ssh
from toolkit.lab.lab import Lab


class Pause(Fault):
    NAME = "pause"
    SUMMARY = "container paused"
    OVER_SSH = True
    # Thawed before any other kind is undone: the others exec into the container (a delay's
    # loop is killed from inside), and Docker cannot exec into a frozen one.
    HALT_RANK = 0

    def inject(self) -> None:
        if self.over_ssh:
            self.lab.node_control(self.node, "pause")
        else:
            self.lab.engine.pause(self.container)

    def undo(self) -> None:
        if self.over_ssh:
            self.lab.node_control(self.node, "cont")
        elif self.lab.engine.state(self.container) == "paused":
            self.lab.engine.unpause(self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        if lab.through_inventory:
            return repair_over_ssh(lab, "cont")
        return repair(lab, lambda c: lab.engine.unpause(c) or True, states=("paused",), role=None)
