"""The probes: plain functions `probe(configuration=None, secrets=None) -> value` that read the
lab as it is now, for the steady state of knight's runner and for a Chaos Toolkit hypothesis
alike. Their values are the journal's (`steady_state[].value`); a probe's tolerance is checked
by `model.Probe.holds` in both runners.

Each reads only the lab (node status, the venue's counts, the load accounts the client
container keeps, the lab's run notes), never a process's memory: a `chaos run` gets the values
knight's own run would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.lab.load import read_accounts
from toolkit.lab.notes import read_notes
from toolkit.settings import node_key

from .context import context

__all__ = [
    "PROBE_FUNCTIONS",
    "RUNAWAY_SHARES",
    "excess_shares",
    "fleet_releases",
    "fleet_uniform",
    "nodes_healthy",
    "orders_lost",
    "runaway_nodes",
]

#: A node with this many excess shares or more is a runaway node.
RUNAWAY_SHARES = 1

Config = dict[str, Any] | None


def fleet_releases(configuration: Config = None, secrets: Config = None) -> dict[str, str | None]:
    """Each node's running release (None: it does not say)."""
    return {n.name: n.release for n in context(configuration).lab.status().nodes}


def fleet_uniform(configuration: Config = None, secrets: Config = None) -> dict[str, str | None]:
    """Each node's running release; it holds when they are one release (tolerance `any`) or
    exactly the tolerance's."""
    return fleet_releases(configuration, secrets)


def nodes_healthy(configuration: Config = None, secrets: Config = None) -> int:
    """How many nodes do not answer their health check (the tolerance is an upper bound)."""
    return sum(not n.healthy for n in context(configuration).lab.status().nodes)


def excess_shares(configuration: Config = None, secrets: Config = None) -> int:
    """Child shares the venue executed beyond their parents' quantities, in its current run."""
    return int(context(configuration).lab.venue_admin().get("/stats").get("excess_shares", 0))


def orders_lost(configuration: Config = None, secrets: Config = None) -> int:
    """Parent orders neither acked, rejected nor filled, over every load of the run (a load
    that could not account for its orders counts one)."""
    lab = context(configuration).lab
    unanswered = sum(r.unanswered for r in read_accounts(lab).values())
    return unanswered + int(read_notes(lab.settings).get("load_errors", 0))


def runaway_nodes(configuration: Config = None, secrets: Config = None) -> list[str]:
    """The nodes whose child orders executed beyond their parents, in the venue's current run."""
    nodes = context(configuration).lab.venue_admin().get("/stats").get("nodes", {})
    found = [n for n, v in nodes.items() if v.get("excess_shares", 0) >= RUNAWAY_SHARES]
    return sorted(found, key=node_key)


#: Probe name -> its function (the steady-state probes of an experiment file and the others).
PROBE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fleet_uniform": fleet_uniform,
    "nodes_healthy": nodes_healthy,
    "excess_shares": excess_shares,
    "orders_lost": orders_lost,
    "runaway_nodes": runaway_nodes,
    "fleet_releases": fleet_releases,
}
