"""stop: the node's container is stopped (SIGTERM, then SIGKILL after a second). On a fleet
reached through an inventory: its router is stopped (SIGTERM from routerd, asked over ssh) and
held down; the undo starts the node again, as a container start does."""

from __future__ import annotations

from typing import ClassVar

from toolkit.chaos.fault import Fault, repair, repair_over_ssh
from toolkit.lab.lab import Lab


class Stop(Fault):
    NAME = "stop"
    SUMMARY = "container stopped"
    OVER_SSH = True
    #: What routerd is told over ssh.
    WORD: ClassVar[str] = "stop"

    def inject(self) -> None:
        if self.over_ssh:
            self.lab.node_control(self.node, self.WORD)
        else:
            self.lab.engine.stop(self.container, timeout=1)

    def undo(self) -> None:
        if self.over_ssh:
            self.lab.node_control(self.node, "start")
        elif self.lab.engine.state(self.container) != "running":
            self.lab.engine.start(self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        if lab.through_inventory:
            return repair_over_ssh(lab, "start")
        return repair(lab, lambda c: lab.engine.start(c) or True, states=("exited", "created"))
