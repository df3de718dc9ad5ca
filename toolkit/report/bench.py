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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.deploy.ansible import run_playbook
from toolkit.deploy.operations import deploy, playbook_vars, rollback
from toolkit.errors import KnightError
from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import run_experiment
from toolkit.guards.sets import DEFAULT as DEFAULT_GUARDS
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadSpec, during_load, run_echo, run_load
from toolkit.monitor import KillRecord, MonitorResult, watch, watch_prometheus
from toolkit.settings import default_forks

from .build import INCIDENT_2012

__all__ = ["GOALS", "run_bench"]

Progress = Callable[[str], None]

GOALS = {
    "router_to_floor_ratio": ">= 0.25",
    "fleet_scaling": ">= 1.25",
    "lab_up_s": "<= 15",
    "deploy_guarded_s": "<= 10",
    "deploy_overhead_ratio": "<= 1.5",
    "flip_skew_ms": "<= 250",
    "flip_skew_ms_max": "<= 250",
    "intake_pause_ms": "<= 1000",
    "interleaved_orders": "== 0",
    "detect_s": "<= 0.5",
    "kill_s": "<= 1.0",
    "builtin_detect_s": "<= 0.5",
    "builtin_kill_s": "<= 1.0",
    "prometheus_kill_s": "<= 5",
    "chaos_total_s": "<= 180",
    "deploy_scaling_32_to_8": "<= 2.5",
    "flip_skew_ms_32": "<= 250",
    "interleaved_orders_32": "== 0",
    "deploy_ssh_to_docker_ratio": "<= 1.3",
}

ROUNDS = 3
#: Guarded, minimal and manual deploys, each this many times (medians are reported).
DEPLOY_ROUNDS = 3

#: Orders in flight per router in the throughput runs: deep enough that a lone router is bound by
#: its own CPU rather than by round trips (at 256 it waits on the network half of the time).
WINDOW = 4096


@dataclass(frozen=True)
class Throughput:
    """One measured run: parent orders per second, and CPU per order of each role."""

    orders_per_s: float
    cpu_us_per_order: dict[str, float]


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _median_run(measure: Callable[[], Throughput], say: Progress, label: str) -> Throughput:
    runs = []
    for i in range(ROUNDS):
        runs.append(measure())
        say(f"{label} {i + 1}/{ROUNDS}: {runs[-1].orders_per_s:,.0f} orders/s")
    return sorted(runs, key=lambda r: r.orders_per_s)[len(runs) // 2]


def _throughput(lab: Lab, nodes: tuple[str, ...], count: int) -> Throughput:
    """Parent orders/s through `nodes`, each answered with an ack and a venue fill."""
    engine = lab.engine
    roles = {"router": [engine.get(lab.settings.container(n)) for n in nodes]}
    roles["venue"] = [engine.get(lab.settings.container("venue"))]
    roles["load generator"] = [lab.client_container()]

    def cpu() -> dict[str, float]:
        return {role: sum(engine.cpu_seconds(c) for c in cs) for role, cs in roles.items()}

    lab.venue_admin().post("/reset", {})
    before = cpu()
    spec = LoadSpec(nodes=nodes, rate=0, count=count, duration_s=None, drain_s=10, window=WINDOW)
    result = run_load(lab, spec)
    after = cpu()
    if result.unanswered or result.filled != result.sent:
        raise KnightError(f"bench: orders went unfilled: {result.raw}")
    per_order = {r: round((after[r] - before[r]) / result.filled * 1e6, 1) for r in roles}
    return Throughput(result.orders_per_s, per_order)


def lab_figures(lab: Lab, say: Progress, orders: int = 100_000) -> dict[str, Any]:
    """Throughput of one router and of the fleet, beside the echo floor; and lab start time."""
    figures: dict[str, Any] = {}
    lab.down()
    started = time.monotonic()
    lab.up()
    figures["lab_up_s"] = round(time.monotonic() - started, 2)
    say(f"lab up in {figures['lab_up_s']}s")

    echo = []
    for i in range(ROUNDS):
        echo.append(float(run_echo(lab, count=orders * 2, window=WINDOW)["echo_msgs_per_s"]))
        say(f"echo floor {i + 1}/{ROUNDS}: {echo[-1]:,.0f} msgs/s")
    one = _median_run(lambda: _throughput(lab, ("smars-1",), orders), say, "one router")
    fleet = _median_run(
        lambda: _throughput(lab, tuple(lab.settings.node_names), orders), say, "fleet"
    )
    figures["echo_floor_msgs_per_s"] = round(statistics.median(echo))
    figures["router_orders_per_s"] = round(one.orders_per_s)
    figures["fleet_orders_per_s"] = round(fleet.orders_per_s)
    figures["router_to_floor_ratio"] = round(one.orders_per_s / figures["echo_floor_msgs_per_s"], 3)
    figures["fleet_scaling"] = round(fleet.orders_per_s / one.orders_per_s, 3)
    # Where the CPU goes: one router is bound by its own core, the fleet by all roles together.
    figures["cpu_us_per_order_one_router"] = one.cpu_us_per_order
    figures["cpu_us_per_order_fleet"] = fleet.cpu_us_per_order
    figures["load_window"] = WINDOW
    lab.venue_admin().post("/reset", {})
    return figures


def deploy_figures(lab: Lab, say: Progress, target: str = "8.0.0") -> dict[str, Any]:
    """The guarded deploy beside a bare stage-and-flip and the 2012 manual one, in one run;
    then a guarded deploy under load, counted from the venue's execution log."""
    figures = _deploy_rounds(lab, say, target)
    figures |= _deploy_under_load(lab, say, target)
    return figures


def _deploy_rounds(lab: Lab, say: Progress, target: str) -> dict[str, Any]:
    """Guarded, minimal and manual deploys, each DEPLOY_ROUNDS times, interleaved (so a slow
    spell of the machine hits all three alike); the figures are medians, the skew's worst case
    beside its median."""
    figures: dict[str, Any] = {}
    runs: dict[str, list[float]] = {"guarded": [], "minimal": [], "manual": []}
    skews: list[float] = []
    pauses: list[float] = []
    for i in range(DEPLOY_ROUNDS):
        lab.reset()
        guarded = deploy(lab, target, guards=GuardSet.of(DEFAULT_GUARDS))
        if guarded.status != "deployed":
            raise KnightError(f"bench: guarded deploy {guarded.status}: {guarded.error}")
        runs["guarded"].append(guarded.duration_s)
        skews.append(guarded.timings["flip_skew_ms"])
        pauses.append(guarded.timings["intake_pause_ms"])
        lab.reset()
        minimal = run_playbook(lab.settings, "minimal_deploy.yml", playbook_vars(lab, target))
        if minimal.rc != 0:
            raise KnightError(f"bench: minimal deploy failed: {minimal.first_failure}")
        runs["minimal"].append(minimal.duration_s)
        lab.reset()
        manual = deploy(lab, target, unsafe=True)
        runs["manual"].append(manual.duration_s)
        say(
            f"deploys {i + 1}/{DEPLOY_ROUNDS}: guarded {guarded.duration_s}s "
            f"(skew {skews[-1]:.0f} ms, intake paused {pauses[-1]:.0f} ms), "
            f"minimal {minimal.duration_s}s, manual {manual.duration_s}s"
        )
    for kind, durations in runs.items():
        figures[f"deploy_{kind}_s"] = _median(durations)
    figures["deploy_overhead_ratio"] = round(
        figures["deploy_guarded_s"] / figures["deploy_minimal_s"], 3
    )
    figures["flip_skew_ms"] = _median(skews)
    figures["flip_skew_ms_max"] = max(skews)
    figures["intake_pause_ms"] = _median(pauses)
    figures["deploy_rounds"] = DEPLOY_ROUNDS
    return figures


def _deploy_under_load(lab: Lab, say: Progress, target: str) -> dict[str, Any]:
    """A guarded deploy while orders flow (from before it until 300 orders have filled after
    it): executions by the old release after the first by the new (interleaved orders: null
    when no order met both releases), the flip's skew and intake pause, and orders lost."""
    figures: dict[str, Any] = {}
    lab.reset()
    spec = LoadSpec(rate=400, duration_s=600, drain_s=8, prefix="benchflip")
    loaded, load = during_load(
        lab, spec, lambda: deploy(lab, target, guards=GuardSet.of(DEFAULT_GUARDS))
    )
    account = {"load": load}
    releases = [e["release"] for e in lab.executions()]
    first_new = releases.index(target) if target in releases else len(releases)
    figures["interleaved_orders"] = (
        sum(r != target for r in releases[first_new:]) if first_new < len(releases) else None
    )
    figures["deploy_under_load_status"] = loaded.status
    figures["flip_skew_ms_under_load"] = loaded.timings.get("flip_skew_ms")
    figures["intake_pause_ms_under_load"] = loaded.timings.get("intake_pause_ms")
    figures["orders_lost_during_deploy"] = account["load"].unanswered
    say(
        f"under load: {figures['interleaved_orders']} interleaved, {account['load'].unanswered} lost"
    )
    lab.reset()
    return figures


#: The fleet sizes the scale part compares (the largest the lab allows, against the default).
SCALE_SIZES = (8, 32)


def _sized(lab: Lab, nodes: int) -> Lab:
    """The same lab (name, engine) with `nodes` nodes and the forks that size gets by default."""
    return Lab(replace(lab.settings, nodes=nodes, forks=default_forks(nodes)), engine=lab.engine)


def _guarded_rounds(lab: Lab, say: Progress, target: str) -> dict[str, Any]:
    """DEPLOY_ROUNDS guarded deploys of `target` on `lab` from its baseline: medians, and the
    worst flip skew; then one under load (interleaved orders) and the rollback after it."""
    n = lab.settings.nodes
    durations, skews, pauses, failed = [], [], [], []
    for i in range(DEPLOY_ROUNDS):
        lab.reset()
        run = deploy(lab, target, guards=GuardSet.of(DEFAULT_GUARDS))
        say(f"{n} nodes, deploy {i + 1}/{DEPLOY_ROUNDS}: {run.status} in {run.duration_s}s, "
            f"skew {run.timings.get('flip_skew_ms')} ms ({run.error or 'no error'})")  # fmt: skip
        if run.status != "deployed":
            failed.append(f"{run.status}: {run.error}")  # reported, not hidden in a median
            continue
        durations.append(run.duration_s)
        skews.append(run.timings["flip_skew_ms"])
        pauses.append(run.timings["intake_pause_ms"])
    if not durations:
        raise KnightError(f"bench: no guarded deploy on {n} nodes succeeded: {failed}")
    # The fleet is on `target`: rolled back, every node must read back on the baseline.
    back = rollback(lab)
    uniform = back.status == "deployed" and all(
        v["after"] == lab.catalog.baseline for v in back.nodes.values()
    )
    say(f"{n} nodes, rollback: {back.status} in {back.duration_s}s")
    # The load lasts past the deploy's measured time, so the flip happens under it.
    loaded = _deploy_under_load(lab, say, target)
    return {
        f"deploy_guarded_{n}_s": _median(durations),
        f"flip_skew_ms_{n}": _median(skews),
        f"flip_skew_ms_max_{n}": max(skews),
        f"intake_pause_ms_{n}": _median(pauses),
        f"interleaved_orders_{n}": loaded["interleaved_orders"],
        f"deploy_under_load_status_{n}": loaded["deploy_under_load_status"],
        f"rollback_reads_back_{n}": uniform,
        f"deploy_failures_{n}": failed,
    }


def scale_figures(lab: Lab, say: Progress, target: str = "8.0.0") -> dict[str, Any]:
    """The guarded deploy at 8 and at 32 nodes in one run (their ratio), the 32-node lab's
    start, and one node's memory at rest. The lab is left as it was found: its own size, up."""
    small, large = (_sized(lab, n) for n in SCALE_SIZES)
    figures: dict[str, Any] = {}
    small.down()
    small.up()
    figures |= _guarded_rounds(small, say, target)
    small.down()
    started = time.monotonic()
    large.up(timeout=180)
    figures["lab_up_32_s"] = round(time.monotonic() - started, 2)
    say(f"32-node lab up in {figures['lab_up_32_s']}s")
    figures |= _guarded_rounds(large, say, target)
    figures["node_rss_mb"] = _node_rss_mb(large)
    large.down()
    lab.up()
    figures["deploy_scaling_32_to_8"] = round(
        figures["deploy_guarded_32_s"] / figures["deploy_guarded_8_s"], 3
    )
    say(f"scaling 32/8: {figures['deploy_scaling_32_to_8']}, a node {figures['node_rss_mb']} MB")
    return figures


def _node_rss_mb(lab: Lab) -> float:
    """One node's resident memory at rest (its router and routerd, and sshd where it runs one),
    the median over the fleet, once the standbys a deploy leaves have expired (a fresh reset)."""
    lab.reset()
    sizes = [
        lab.engine.rss_bytes(lab.engine.get(lab.settings.container(n)))
        for n in lab.settings.node_names
    ]
    return round(statistics.median(sizes) / 2**20, 1)


def guard_figures(lab: Lab, say: Progress, node: str = "smars-4") -> dict[str, Any]:
    """The monitor alone against a runaway: Power Peg on one node, declared as such (so the
    only signal is the runaway itself, not a meaning drift). detect_s: the first child order
    executed beyond its parent to the alert; kill_s: the alert to the last child order from any
    node; excess_shares_monitor_only: what got through. Knight needed about 45 minutes."""
    lab.reset(GuardSet.of(["monitor"]))
    lab.wait_healthy(timeout=30)
    monitor = watch(lab, acting=True, out_dir=lab.settings.reports / "monitor" / "bench")
    try:
        flags = lab.baseline_flags()
        flags["flag_7"] = {"value": True, "meaning": "power_peg"}
        lab.set_flags(node, flags)
        load = run_load(
            lab, LoadSpec(nodes=(node,), rate=100, duration_s=3, rlp_share=1.0, drain_s=2)
        )
        time.sleep(1.0)  # the kill's last echoes
    finally:
        result = monitor.stop()
    stats = lab.venue_admin().get("/stats")
    first_excess = stats["nodes"].get(node, {}).get("first_excess_at")
    alert = result.first_alert("kill")
    rows = lab.executions()
    figures: dict[str, Any] = {
        "excess_shares_monitor_only": stats["excess_shares"],
        "monitor_alert_rule": alert.rule if alert else None,
        "monitor_parent_orders": load.sent,
    }
    if alert is None or first_excess is None:
        raise KnightError(f"bench: no runaway or no alert (alert {alert}, excess {first_excess})")
    last_child = max(r["t"] for r in rows)
    figures["detect_s"] = round(alert.raised - first_excess, 3)
    figures["kill_s"] = round(last_child - alert.raised, 3)
    say(
        f"monitor: detect {figures['detect_s']}s, kill {figures['kill_s']}s, "
        f"{figures['excess_shares_monitor_only']} excess shares"
    )
    lab.reset(GuardSet())
    return figures


def observe_figures(lab: Lab, say: Progress, node: str = "smars-8") -> dict[str, Any]:
    """The built-in monitor and Prometheus + Alertmanager side by side, in one run, both acting
    on one runaway: the rollback experiment's skipped node (smars-8) running Power Peg, declared
    as such, so the runaway itself is the only signal (a flag-meaning drift would stop the fleet
    before its first child order). Times count from the first child order executed beyond its
    parent: detect to the first critical alert (Prometheus's: when it fired), kill to the kill
    switch on every node (Prometheus's: thrown on its notification through Alertmanager's kill
    webhook). In 2012, nothing stopped it for 45 minutes (`incident_2012_s`)."""
    lab.up(observe=True)
    lab.reset(GuardSet.of(["monitor"]))
    lab.wait_healthy(timeout=30)
    out = lab.settings.reports / "monitor" / "bench-observe"
    via = watch_prometheus(lab, acting=True, out_dir=out)
    builtin = watch(lab, acting=True, out_dir=out)
    try:
        flags = lab.baseline_flags()
        flags["flag_7"] = {"value": True, "meaning": "power_peg"}
        lab.set_flags(node, flags)
        run_load(lab, LoadSpec(nodes=(node,), rate=100, duration_s=3, rlp_share=1.0, drain_s=2))
        # Prometheus's kill comes after the built-in one: wait for it, generously.
        deadline = time.monotonic() + 60
        while not via.kills and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        seen = {"builtin": builtin.stop(), "prometheus": via.stop()}
    stats = lab.venue_admin().get("/stats")
    first = stats["nodes"].get(node, {}).get("first_excess_at")
    if first is None:
        raise KnightError(f"bench: {node} did not run away (venue: {stats['nodes'].get(node)})")
    figures: dict[str, Any] = {"excess_shares_side_by_side": stats["excess_shares"]}
    for path, result in seen.items():
        figures |= _path_figures(path, result, first)
    figures["prometheus_notified_s"] = (
        round(min(via.kill_notified) - first, 3) if via.kill_notified else None
    )
    figures["incident_2012_s"] = INCIDENT_2012["duration_minutes"] * 60
    say(
        f"side by side: built-in detect {figures['builtin_detect_s']}s kill "
        f"{figures['builtin_kill_s']}s; prometheus detect {figures['prometheus_detect_s']}s kill "
        f"{figures['prometheus_kill_s']}s (2012: 45 minutes)"
    )
    lab.reset(GuardSet())
    return figures


def _path_figures(path: str, seen: MonitorResult, first_excess: float) -> dict[str, Any]:
    """One path's detect and kill times (null when it never did), from the first runaway child."""
    alert = seen.first_alert("kill")
    kill: KillRecord | None = min(seen.kills, key=lambda k: k.done, default=None)
    return {
        f"{path}_detect_s": round(alert.raised - first_excess, 3) if alert else None,
        f"{path}_kill_s": round(kill.done - first_excess, 3) if kill else None,
        f"{path}_alert_rule": alert.rule if alert else None,
        f"{path}_alert_owner": alert.owner if alert else None,
    }


def chaos_figures(lab: Lab, say: Progress) -> dict[str, Any]:
    """The six runs of `make chaos` (three experiments, unsafe then guarded), lab resets
    included; and whether each showed what its file expects."""
    started = time.monotonic()
    met = {}
    for exp_id in ("skipped_node", "reused_flag", "rollback"):
        exp = load_experiment(exp_id, {})
        for mode in ("unsafe", "guarded"):
            result = run_experiment(lab, exp, mode)
            met[f"{exp_id}/{mode}"] = result.journal.get("expectations_met")
            say(f"{exp_id} {mode}: {result.journal['duration_s']}s")
    return {"chaos_total_s": round(time.monotonic() - started, 1), "chaos_expectations_met": met}


def ssh_figures(lab: Lab, say: Progress, target: str = "8.0.0") -> dict[str, Any]:
    """The guarded deploy of the fleet over ssh beside the same over `docker exec`: a second lab
    of the ssh transport (the lab's name + "-ssh") beside this one, the two deploys interleaved
    DEPLOY_ROUNDS times (a slow spell of the machine hits both alike); medians."""
    ssh_lab = Lab(replace(lab.settings, lab=f"{lab.settings.lab}-ssh", transport="ssh"))
    say(f"ssh lab {ssh_lab.settings.lab} up")
    ssh_lab.up()
    runs: dict[str, list[float]] = {"docker": [], "ssh": []}
    try:
        for i in range(DEPLOY_ROUNDS):
            for kind, each in (("docker", lab), ("ssh", ssh_lab)):
                each.reset()
                result = deploy(each, target, guards=GuardSet.of(DEFAULT_GUARDS))
                if result.status != "deployed":
                    raise KnightError(
                        f"bench: guarded deploy over {kind} {result.status}: {result.error}"
                    )
                runs[kind].append(result.duration_s)
            say(
                f"deploys {i + 1}/{DEPLOY_ROUNDS}: docker {runs['docker'][-1]}s, ssh {runs['ssh'][-1]}s"
            )
    finally:
        ssh_lab.down()
        lab.reset()
    figures = {f"deploy_{kind}_guarded_s": _median(times) for kind, times in runs.items()}
    figures["deploy_ssh_to_docker_ratio"] = round(
        figures["deploy_ssh_guarded_s"] / figures["deploy_docker_guarded_s"], 3
    )
    return figures


def run_bench(
    lab: Lab,
    path: Path,
    progress: Progress | None = None,
    *,
    parts: tuple[str, ...],
) -> dict[str, Any]:
    """Measure `parts` (the CLI's BENCH_PARTS, or some of them), merge into `path`, and return
    {figure: {value, goal}}."""
    say = progress or (lambda _m: None)
    figures: dict[str, Any] = {}
    if "lab" in parts:
        figures |= lab_figures(lab, say)
    if "deploy" in parts:
        figures |= deploy_figures(lab, say)
    if "ssh" in parts:
        figures |= ssh_figures(lab, say)
    if "guards" in parts:
        figures |= guard_figures(lab, say)
    if "observe" in parts:
        figures |= observe_figures(lab, say)
    if "chaos" in parts:
        figures |= chaos_figures(lab, say)
    if "scale" in parts:
        figures |= scale_figures(lab, say)
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
