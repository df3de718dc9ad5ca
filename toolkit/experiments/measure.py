"""What the venue says a run did, read from the lab alone: the outcome and the child-order series
of the venue's current run. For a runner that keeps no journal of its own as it goes (a `chaos
run`): knight's runner measures the same from its journal's clock (run.py)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from toolkit.lab.lab import Lab
from toolkit.lab.load import read_accounts

from .journal import Outcome
from .probes import RUNAWAY_SHARES

__all__ = ["measured_outcome", "venue_outcome", "venue_series"]


def venue_outcome(
    lab: Lab,
    stats: dict[str, Any],
    parent_orders: int,
    detected_at_s: float | None = None,
    killed_at_s: float | None = None,
) -> Outcome:
    """The outcome the venue's `/stats` say, with the parent orders sent and each node's release
    now; the times to detect and to kill are the runner's to give (null when none watched)."""
    nodes = stats.get("nodes", {})
    return Outcome(
        parent_orders=parent_orders,
        child_orders=int(stats.get("child_orders", 0)),
        executions=int(stats.get("executions", 0)),
        shares_traded=int(stats.get("shares", 0)),
        excess_shares=int(stats.get("excess_shares", 0)),
        runaway_nodes=sorted(
            n for n, v in nodes.items() if v.get("excess_shares", 0) >= RUNAWAY_SHARES
        ),
        detected_at_s=detected_at_s,
        killed_at_s=killed_at_s,
        loss_usd=float(stats.get("loss_usd", 0.0)),
        fleet_end={n.name: n.release for n in lab.status().nodes},
    )


def measured_outcome(lab: Lab) -> dict[str, Any]:
    """The journal's `outcome` for the venue's current run. Times to detect and to kill are
    null: no monitor watched the run."""
    stats = lab.venue_admin().get("/stats")
    sent = sum(r.sent for r in read_accounts(lab).values())
    return asdict(venue_outcome(lab, stats, sent))


def venue_series(lab: Lab, started_at: float | None, interval_s: float) -> dict[str, Any]:
    """Child orders per second per node, every `interval_s` from the venue's start until now
    (the journal's `series`)."""
    body = lab.venue_admin().get("/series")
    bucket = float(body.get("bucket_s", 0.25))
    start = float(body.get("started_at", started_at or time.time()))
    per_node = {n: dict(map(tuple, rows)) for n, rows in body.get("nodes", {}).items()}
    nodes = lab.settings.node_names
    per_step = max(1, round(interval_s / bucket))
    series: dict[str, Any] = {"interval_s": interval_s, "t": [], "child_orders_per_s": {}}
    t, span = 0.0, time.time() - start
    while t <= span:
        first = int(t / bucket)
        series["t"].append(round(t, 3))
        for n in nodes:
            count = sum(per_node.get(n, {}).get(b, 0) for b in range(first, first + per_step))
            series["child_orders_per_s"].setdefault(n, []).append(count / (per_step * bucket))
        t += interval_s
    return series
