"""kill: the node's router dies at once (SIGKILL to the container), as a crashed server. Its undo
and halt are a stopped container's: start it again."""

from __future__ import annotations

from .stop import Stop


class Kill(Stop):
    NAME = "kill"
    SUMMARY = "router killed (SIGKILL)"

    def inject(self) -> None:
        self.lab.engine.kill(self.container)
