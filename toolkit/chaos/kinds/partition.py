"""partition: the node is cut off the lab network: the venue, the artifact store, its peers
and the clients can no longer reach it, nor it them."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Partition(Fault):
    NAME = "partition"
    SUMMARY = "cut off the lab network"

    def inject(self) -> None:
        self.lab.engine.disconnect(self.lab.settings.network, self.container)

    def undo(self) -> None:
        _reconnect(self.lab, self.container, self.node)

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        return repair(
            lab,
            lambda c: _reconnect(lab, c, c.labels.get("knight.node", c.name)),
            states=("running", "exited", "created", "paused"),
        )


def _reconnect(lab: Lab, container, node: str) -> bool:
    if lab.settings.network in lab.engine.networks_of(container):
        return False
    lab.engine.connect(lab.settings.network, container, aliases=[node])
    return True
