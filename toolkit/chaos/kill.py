"""kill: the node's router dies at once (SIGKILL to the container), as a crashed server."""

from __future__ import annotations

from ..lab import Lab
from . import Fault
from .stop import _start_exited


class Kill(Fault):
    NAME = "kill"
    SUMMARY = "router killed (SIGKILL)"

    def inject(self) -> None:
        self.container.kill()

    def undo(self) -> None:
        self.container.reload()
        if self.container.status != "running":
            self.container.start()

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return _start_exited(lab)
