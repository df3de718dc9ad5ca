"""A node whose /metrics does not answer: the monitor is blind to it (a stopped or paused
container, a wedged admin thread). A warning, held a second so one slow scrape is not paged."""

from __future__ import annotations

from toolkit.monitor.fleet import Fleet
from toolkit.monitor.rule import Finding, Rule

__all__ = ["NodeDown"]


class NodeDown(Rule):
    name = "node_down"
    owner = "platform"
    severity = "warning"
    action = "page"
    for_s = 1.0

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        return [
            Finding(n.name, f"{n.name}: /metrics did not answer: {n.error}", float(n.failures))
            for n in fleet
            if not n.up and n.last_t is not None
        ]
