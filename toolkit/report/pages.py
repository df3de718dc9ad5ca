"""What a run's page says, as tables of plain values: its facts, its outcome, the fleet at the
end, the steady state, the expectations and the timeline. The Markdown and the HTML pages lay
out the same tables, so a figure is worked out once for both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.experiments.journal import GUARDS
from toolkit.settings import node_key

from .format import detect_text, fmt_int, fmt_seconds, fmt_usd, runaway_text
from .journals import KNIGHT, RUNNERS

__all__ = ["OUTCOME_COLUMNS", "Table", "facts", "outcome_row", "run_tables", "stop_times"]

OUTCOME_COLUMNS = (
    "parent orders",
    "child orders",
    "executions",
    "shares traded",
    "excess shares",
    "runaway nodes",
    "detected at",
    "killed at",
    "loss",
)


@dataclass(frozen=True)
class Table:
    """One section of a run's page: its title, a note above it, its header and rows."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""


def facts(doc: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The run at a glance: status, expectations, start, duration, guards, parameters."""
    guards = doc.get("guards") or {}
    on = [g for g in GUARDS if guards.get(g)]
    met = doc.get("expectations_met")
    deviated = " (steady state broken after)" if doc.get("deviated") else ""
    runner = str(doc.get("runner") or KNIGHT)
    return [
        ("status", f"{doc['status']}{deviated}"),
        ("run by", RUNNERS.get(runner, runner)),
        ("expectations", "—" if met is None else ("met" if met else "NOT met")),
        ("start", doc.get("start")),
        ("duration", fmt_seconds(doc.get("duration_s"), "—")),
        ("guards on", ", ".join(on) or "none"),
        ("parameters", doc.get("parameters") or {}),
    ]


def outcome_row(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The outcome's cells, in OUTCOME_COLUMNS order (times from the fault)."""
    outcome = doc["outcome"]
    return (
        fmt_int(outcome.get("parent_orders")),
        fmt_int(outcome.get("child_orders")),
        fmt_int(outcome.get("executions")),
        fmt_int(outcome.get("shares_traded")),
        fmt_int(outcome.get("excess_shares")),
        runaway_text(outcome),
        detect_text(doc),
        fmt_seconds(outcome.get("killed_at_s")),
        fmt_usd(outcome.get("loss_usd")),
    )


def run_tables(doc: Mapping[str, Any]) -> list[Table]:
    """The sections under the outcome, those with something to show: fleet at the end, steady
    state, expectations; and the timeline, always (empty when no event was recorded)."""
    tables = []
    fleet = (doc.get("outcome") or {}).get("fleet_end") or {}
    if fleet:
        rows = sorted(fleet.items(), key=lambda kv: node_key(kv[0]))
        tables.append(Table("Fleet at the end", ("node", "release"), rows))
    steady = doc.get("steady_state") or {}
    probes = [
        (phase, r.get("probe"), r.get("tolerance"), r.get("value"), r.get("ok"))
        for phase in ("before", "after")
        for r in steady.get(phase) or []
    ]
    if probes:
        header = ("when", "probe", "tolerance", "observed", "held")
        tables.append(Table("Steady state", header, probes))
    expectations = doc.get("expectations") or []
    if expectations:
        rows = [
            (e.get("name"), e.get("expected"), e.get("actual"), e.get("met")) for e in expectations
        ]
        tables.append(Table("Expectations", ("expectation", "expected", "actual", "met"), rows))
    events = [
        (f"{float(e.get('t') or 0):.2f}", e.get("kind"), e.get("node"), e.get("detail"))
        for e in doc.get("timeline") or []
    ]
    note = "" if events else "No events were recorded."
    tables.append(Table("Timeline", ("t (s)", "kind", "node", "detail"), events, note))
    return tables


#: The bench's side-by-side figures (toolkit/report/bench.py, observe_figures): path -> its keys.
_STOP_PATHS = {
    "knight's own monitor (a scrape every 200 ms)": "builtin",
    "Prometheus + Alertmanager (1 s scrape and evaluation, kill webhook)": "prometheus",
}


def _centi(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def stop_times(bench: Mapping[str, Any], incident: Mapping[str, Any]) -> Table | None:
    """The bench's detect and kill times of both paths of the monitor on one runaway, beside
    2012's; None when the bench has not measured them."""
    if not any(f"{key}_kill_s" in bench for key in _STOP_PATHS.values()):
        return None
    goals = bench.get("goals", {})
    rows: list[tuple[Any, ...]] = []
    for label, key in _STOP_PATHS.items():
        kill = bench.get(f"{key}_kill_s")
        goal = goals.get(f"{key}_kill_s", "")
        rows.append((label, _centi(bench.get(f"{key}_detect_s")), _centi(kill), goal or "—"))
    lasted = fmt_seconds(60 * incident["duration_minutes"])
    unread = incident.get("pre_open_alert_emails")
    rows.append((f"Knight Capital, 2012 ({unread} e-mails unread)", "never", lasted, "—"))
    note = (
        f"From `knight bench` (`reports/bench.json`, measured {bench.get('measured_at', '?')}): "
        "one node runs Power Peg; both paths of the monitor watch the same run and throw the "
        "kill switch. Seconds from the first child order executed beyond its parent."
    )
    header = ("monitor", "time to detect", "time to kill", "goal (kill)")
    return Table("Time to stop a runaway", header, rows, note)
