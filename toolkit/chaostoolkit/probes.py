"""knight's probes for a Chaos Toolkit hypothesis or method: the functions knight's runner reads
its steady state with, each `probe(configuration=None, secrets=None) -> value`."""

from __future__ import annotations

from toolkit.experiments.probes import (
    excess_shares,
    fleet_releases,
    fleet_uniform,
    nodes_healthy,
    orders_lost,
    runaway_nodes,
)

__all__ = [
    "excess_shares",
    "fleet_releases",
    "fleet_uniform",
    "nodes_healthy",
    "orders_lost",
    "runaway_nodes",
]
