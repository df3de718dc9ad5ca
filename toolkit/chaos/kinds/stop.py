"""stop: the node's container is stopped (SIGTERM, then SIGKILL after a second)."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Stop(Fault):
    NAME = "stop"
    SUMMARY = "container stopped"

    def inject(self) -> None:
        self.lab.engine.stop(self.container, timeout=1)

    def undo(self) -> None:
        if self.lab.engine.state(self.container) != "running":
            self.lab.engine.start(self.container)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: lab.engine.start(c) or True, states=("exited", "created"))
