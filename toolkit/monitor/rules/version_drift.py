"""Nodes that do not run what the rest of the fleet runs (release and tree hash from
`smars_info`): the 2012 server that the manual deploy skipped. The nodes outside the largest
group are named (all of them when the largest is tied).

A warning that pages release engineering, not a kill: a fleet is briefly mixed during every
deploy flip, and a mixed fleet is harmful only with a flag that means different things, which
`flag_meaning_drift` stops. The 10 s hold outlasts an atomic flip."""

from __future__ import annotations

from toolkit.monitor.fleet import Fleet
from toolkit.monitor.rule import Finding, Rule, odd_ones_out

__all__ = ["VersionDrift"]


class VersionDrift(Rule):
    name = "version_drift"
    owner = "release-engineering"
    severity = "warning"
    action = "page"
    for_s = 10.0

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        running: dict[str, tuple[str, str]] = {}
        for node in fleet.up():
            labels = node.latest.labels("smars_info") if node.latest else None
            if labels is not None:
                running[node.name] = (labels.get("release", ""), labels.get("tree", ""))
        odd = odd_ones_out(running)
        if not odd:
            return []
        fleet_view = ", ".join(
            f"{release} ({tree[:12]}) on {sum(1 for v in running.values() if v == (release, tree))}"
            for release, tree in sorted(set(running.values()))
        )
        return [
            Finding(
                node,
                f"{node} runs {running[node][0]} ({running[node][1][:12]}); fleet: {fleet_view}",
                float(len(odd)),
            )
            for node in odd
        ]
