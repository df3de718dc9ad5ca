"""stop: the node's container is stopped (SIGTERM, then SIGKILL after a second)."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Stop(Fault):
    NAME = "stop"
    SUMMARY = "container stopped"

    def inject(self) -> None:
        self.container.stop(timeout=1)

    def undo(self) -> None:
        self.container.reload()
        if self.container.status != "running":
            self.container.start()

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(lab, lambda c: c.start() or True, states=("exited", "created"))
