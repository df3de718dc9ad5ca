"""partition: the node is cut off the lab network: the venue, the artifact store, its peers
and the clients can no longer reach it, nor it them."""

from __future__ import annotations

from toolkit.chaos.fault import Fault, repair
from toolkit.lab.lab import Lab


class Partition(Fault):
    NAME = "partition"
    SUMMARY = "cut off the lab network"

    def inject(self) -> None:
        self.lab.engine.client.networks.get(self.lab.settings.network).disconnect(self.container)

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
    container.reload()
    if lab.settings.network in container.attrs["NetworkSettings"]["Networks"]:
        return False
    lab.engine.client.networks.get(lab.settings.network).connect(container, aliases=[node])
    return True
