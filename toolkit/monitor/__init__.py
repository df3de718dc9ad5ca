"""Guard 5, the monitor: scrape every node's /metrics every 200 ms, raise alerts for version or
flag-meaning drift, overfill, order-rate anomalies, error bursts and silent nodes; every alert
has an owner, a severity, a runbook and an action. Guarded, critical alerts turn the kill
switch on across the fleet; the 2012 way, alerts go to a mailbox nobody reads.

    monitor = watch(lab, acting=True)      # started
    ...
    result = monitor.stop()                # MonitorResult: alerts, kills, rounds

The same, through the lab's Prometheus and Alertmanager (`knight lab up --observe`): Prometheus
evaluates monitor/prometheus/rules.yml, Alertmanager routes critical alerts to the lab's
webhook receiver, and knight throws the kill switch (`watch_prometheus`, receiver.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.lab.observe import write_targets

from .actions import Action, KillRecord, KillSwitch, Mailbox, Record
from .alert import Alert
from .fleet import FlagState, Fleet, NodeState, NodeView, Sample, parse
from .monitor import MAX_INTERVAL_S, Monitor, MonitorResult, ScrapeTarget
from .receiver import AlertReceiver, wait_quiet
from .rule import Finding, Rule
from .rules import default_rules, rule_classes

if TYPE_CHECKING:
    from toolkit.lab.lab import Lab

__all__ = [
    "MAX_INTERVAL_S",
    "MONITORS",
    "Action",
    "Alert",
    "AlertReceiver",
    "Finding",
    "FlagState",
    "Fleet",
    "KillRecord",
    "KillSwitch",
    "Mailbox",
    "Monitor",
    "MonitorResult",
    "NodeState",
    "NodeView",
    "Record",
    "Rule",
    "Sample",
    "ScrapeTarget",
    "default_rules",
    "parse",
    "rule_classes",
    "watch",
    "watch_prometheus",
]

ALERTS_FILE = "alerts.jsonl"
MAILBOX_FILE = "mailbox.mbox"
PROMETHEUS_ALERTS_FILE = "prometheus-alerts.jsonl"
PROMETHEUS_MAILBOX_FILE = "prometheus-mailbox.mbox"
#: The monitor's two paths: knight's own scraper, and Prometheus + Alertmanager in the lab.
MONITORS = ("builtin", "prometheus")


def watch(
    lab: Lab,
    acting: bool,
    out_dir: Path | str | None = None,
    interval_s: float = 0.2,
    rules: Sequence[Rule] | None = None,
    nodes: Sequence[str] | None = None,
    start: bool = True,
) -> Monitor:
    """A monitor on the lab's nodes (all of them unless `nodes`), started unless `start=False`.

    Every alert and kill is appended to `<out_dir>/alerts.jsonl` (default
    `reports/monitor/`). `acting=True` (the monitor guard on): critical alerts POST /kill to
    every node. `acting=False` (2012): alerts are also written to `<out_dir>/mailbox.mbox`,
    and nothing acts.
    """
    names = list(nodes or lab.settings.node_names)
    out = Path(out_dir) if out_dir is not None else lab.settings.reports / "monitor"
    record = Record(out / ALERTS_FILE)
    actions: list[Action] = [record]
    if acting:
        actions.append(KillSwitch([lab.node_admin(n, timeout=2.0) for n in names], record))
    else:
        actions.append(Mailbox(out / MAILBOX_FILE))
    monitor = Monitor(
        [lab.node_admin(n, timeout=1.0) for n in names],
        rules=rules,
        actions=actions,
        interval_s=interval_s,
    )
    return monitor.start() if start else monitor


def watch_prometheus(
    lab: Lab,
    acting: bool,
    out_dir: Path | str | None = None,
    settle_s: float = 120.0,
    start: bool = True,
) -> AlertReceiver:
    """The Prometheus path on the lab's nodes, started unless `start=False`: Prometheus pointed
    at the routers the lab has now, Alertmanager settled (no critical alert of an earlier run
    still active, waiting up to `settle_s`), then every notification read from the lab's
    webhook receiver. Alerts and kills go to `<out_dir>/prometheus-alerts.jsonl`;
    `acting=True`: an alert of the `kill` webhook throws the kill switch on every node;
    `acting=False` (2012): alerts are written to `<out_dir>/prometheus-mailbox.mbox` only."""
    nodes = write_targets(lab)
    wait_quiet(lab.observe_client("alertmanager"), timeout=settle_s)
    out = Path(out_dir) if out_dir is not None else lab.settings.reports / "monitor"
    record = Record(out / PROMETHEUS_ALERTS_FILE)
    kill = KillSwitch([lab.node_admin(n, timeout=2.0) for n in nodes], record) if acting else None
    actions: list[Action] = [record]
    if not acting:
        actions.append(Mailbox(out / PROMETHEUS_MAILBOX_FILE))
    wait_s = 2.0
    receiver = AlertReceiver(
        lab.observe_client("receiver", timeout=wait_s + 10), actions, kill, wait_s=wait_s
    )
    return receiver.start() if start else receiver
