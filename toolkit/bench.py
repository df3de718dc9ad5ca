"""`knight bench`: performance figures of the lab, each compared within one run on this machine.

Figures are written to `reports/bench.json` (merged with figures other benchmarks wrote there);
goals are reported beside them, never asserted by tests.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .lab import Lab
from .load import LoadSpec, run_echo, run_load

__all__ = ["GOALS", "run_bench"]

Progress = Callable[[str], None]

GOALS = {
    "router_to_floor_ratio": ">= 0.25",
    "fleet_scaling": ">= 1.25",
    "lab_up_s": "<= 15",
}

ROUNDS = 3


def _median(measure: Callable[[], float], say: Progress, label: str) -> float:
    values = []
    for i in range(ROUNDS):
        values.append(measure())
        say(f"{label} round {i + 1}/{ROUNDS}: {values[-1]:,.0f}")
    return statistics.median(values)


#: Orders in flight per router in the throughput runs: deep enough that a lone router is bound by
#: its own CPU rather than by round trips (at 256 it waits on the network half the time).
WINDOW = 4096


def lab_figures(lab: Lab, say: Progress, orders: int = 100_000) -> dict[str, float]:
    """Throughput of one router and of the fleet, beside the echo floor; and lab start time."""
    figures: dict[str, float] = {}
    lab.down()
    started = time.monotonic()
    lab.up()
    figures["lab_up_s"] = round(time.monotonic() - started, 2)
    say(f"lab up in {figures['lab_up_s']}s")

    def echo() -> float:
        return float(run_echo(lab, count=orders * 2, window=WINDOW)["echo_msgs_per_s"])

    def load(nodes: tuple[str, ...], count: int) -> Callable[[], float]:
        def once() -> float:
            lab.venue_admin().post("/reset", {})
            result = run_load(
                lab, LoadSpec(nodes=nodes, rate=0, count=count, duration_s=None, drain_s=10, window=WINDOW)
            )
            if result.unanswered or result.filled != result.sent:
                raise RuntimeError(f"bench load lost orders: {result.raw}")
            return result.orders_per_s

        return once

    figures["echo_floor_msgs_per_s"] = round(_median(echo, say, "echo floor"))
    figures["router_orders_per_s"] = round(_median(load(("smars-1",), orders), say, "one router"))
    figures["fleet_orders_per_s"] = round(
        _median(load(tuple(lab.settings.node_names), orders), say, "fleet")
    )
    figures["router_to_floor_ratio"] = round(
        figures["router_orders_per_s"] / figures["echo_floor_msgs_per_s"], 3
    )
    figures["fleet_scaling"] = round(
        figures["fleet_orders_per_s"] / figures["router_orders_per_s"], 3
    )
    lab.venue_admin().post("/reset", {})
    return figures


def run_bench(lab: Lab, path: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Measure, merge into `path`, and return {figure: {value, goal}}."""
    say = progress or (lambda _m: None)
    figures = lab_figures(lab, say)
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = {}
    doc.update(figures)
    doc["goals"] = {**doc.get("goals", {}), **GOALS}
    doc["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    doc["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return {k: {"value": v, "goal": GOALS.get(k, "")} for k, v in figures.items()}
