"""kill: the node's router dies at once (SIGKILL to the container), as a crashed server. Its undo
and halt are a stopped container's: start it again. On a fleet reached through an inventory:
SIGKILL to the router from routerd (asked over ssh), which holds the node down until the undo."""

from __future__ import annotations

from .stop import Stop


class Kill(Stop):
    NAME = "kill"
    SUMMARY = "router killed (SIGKILL)"
    WORD = "kill"

    def inject(self) -> None:
        if self.over_ssh:
            self.lab.node_control(self.node, self.WORD)
        else:
            self.lab.engine.kill(self.container)
