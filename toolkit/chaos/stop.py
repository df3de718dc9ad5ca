"""stop: the node's container is stopped (SIGTERM, then SIGKILL after a second)."""

from __future__ import annotations

from ..lab import Lab
from . import Fault


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
        return _start_exited(lab)


def _start_exited(lab: Lab) -> list[str]:
    """Start every router container of the lab that is not running (stopped or killed)."""
    started = []
    for container in lab.engine.containers(role="router"):
        if container.status in ("exited", "created"):
            container.start()
            started.append(container.labels.get("knight.node", container.name))
    return started
