"""Guard 5, the monitor: scrape every node's /metrics every 200 ms, raise alerts for version or
flag-meaning drift, overfill, order-rate anomalies, error bursts and silent nodes; every alert
has an owner, a severity, a runbook and an action. Guarded, critical alerts turn the kill
switch on across the fleet; the 2012 way, alerts go to a mailbox nobody reads.

    monitor = watch(lab, acting=True)      # started
    ...
    result = monitor.stop()                # MonitorResult: alerts, kills, rounds
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .actions import Action, KillRecord, KillSwitch, Mailbox, Record
from .alert import Alert
from .fleet import FlagState, Fleet, NodeState, NodeView, Sample, parse
from .monitor import MAX_INTERVAL_S, Monitor, MonitorResult, ScrapeTarget
from .rule import Finding, Rule
from .rules import default_rules, rule_classes

if TYPE_CHECKING:
    from toolkit.lab.lab import Lab

__all__ = [
    "MAX_INTERVAL_S",
    "Action",
    "Alert",
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
]

ALERTS_FILE = "alerts.jsonl"
MAILBOX_FILE = "mailbox.mbox"


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
