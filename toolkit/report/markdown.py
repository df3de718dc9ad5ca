"""The report's Markdown pages: one per run (its facts, outcome, fleet, steady state, expectations
and timeline), the defense-in-depth matrix, and the index that links them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.experiments.journal import GUARDS
from toolkit.settings import node_key

from .format import fmt_int, fmt_seconds, fmt_usd, md_table, runaway_text
from .journals import JournalRun

__all__ = ["MATRIX_SETS", "index_page", "matrix_section", "run_page"]

#: Guard sets of the defense-in-depth matrix, in column order.
MATRIX_SETS = ("none", *GUARDS, "all")


# -- a run's page ---------------------------------------------------------------------------------
def run_page(run: JournalRun, plot: Path) -> str:
    """The page of one run, `plot` (its PNG, beside the page) shown under its facts."""
    doc, outcome = run.doc, run.doc["outcome"]
    lines = [
        f"# {doc['experiment']} — {doc['mode']} (guards: {run.guards})",
        "",
        "[← the report](../index.md)",
        "",
        *_facts_table(doc),
        "",
        f"![child orders per second per node]({plot.name})",
        "",
        "## Outcome",
        "",
        "Times are seconds from the fault.",
        "",
        *_outcome_table(outcome),
        "",
    ]
    lines += _fleet_section(outcome.get("fleet_end") or {})
    lines += _steady_state_section(doc.get("steady_state") or {})
    lines += _expectations_section(doc.get("expectations") or [])
    lines += _timeline_section(doc.get("timeline") or [])
    return "\n".join(lines) + "\n"


def _facts_table(doc: Mapping[str, Any]) -> list[str]:
    guards = doc.get("guards") or {}
    on = [g for g in GUARDS if guards.get(g)]
    met = doc.get("expectations_met")
    deviated = " (steady state broken after)" if doc.get("deviated") else ""
    return md_table(
        ("", ""),
        [
            ("status", f"{doc['status']}{deviated}"),
            ("expectations", "—" if met is None else ("met" if met else "NOT met")),
            ("start", doc.get("start")),
            ("duration", fmt_seconds(doc.get("duration_s"), "—")),
            ("guards on", ", ".join(on) or "none"),
            ("parameters", doc.get("parameters") or {}),
        ],
    )


def _outcome_table(outcome: Mapping[str, Any]) -> list[str]:
    return md_table(
        (
            "parent orders",
            "child orders",
            "executions",
            "shares traded",
            "excess shares",
            "runaway nodes",
            "detected at",
            "killed at",
            "loss",
        ),
        [
            (
                fmt_int(outcome.get("parent_orders")),
                fmt_int(outcome.get("child_orders")),
                fmt_int(outcome.get("executions")),
                fmt_int(outcome.get("shares_traded")),
                fmt_int(outcome.get("excess_shares")),
                runaway_text(outcome),
                fmt_seconds(outcome.get("detected_at_s")),
                fmt_seconds(outcome.get("killed_at_s")),
                fmt_usd(outcome.get("loss_usd")),
            )
        ],
    )


def _fleet_section(fleet: Mapping[str, str]) -> list[str]:
    if not fleet:
        return []
    rows = sorted(fleet.items(), key=lambda kv: node_key(kv[0]))
    return ["## Fleet at the end", "", *md_table(("node", "release"), rows), ""]


def _steady_state_section(steady: Mapping[str, Any]) -> list[str]:
    probes = [
        (phase, *_probe_cells(r)) for phase in ("before", "after") for r in steady.get(phase) or []
    ]
    if not probes:
        return []
    header = ("when", "probe", "tolerance", "observed", "held")
    return ["## Steady state", "", *md_table(header, probes), ""]


def _probe_cells(result: Mapping[str, Any]) -> tuple[Any, ...]:
    return (result.get("probe"), result.get("tolerance"), result.get("value"), result.get("ok"))


def _expectations_section(expectations: list[Mapping[str, Any]]) -> list[str]:
    if not expectations:
        return []
    rows = [(e.get("name"), e.get("expected"), e.get("actual"), e.get("met")) for e in expectations]
    header = ("expectation", "expected", "actual", "met")
    return ["## Expectations", "", *md_table(header, rows), ""]


def _timeline_section(timeline: list[Mapping[str, Any]]) -> list[str]:
    if not timeline:
        return ["## Timeline", "", "No events were recorded."]
    rows = [
        (f"{float(e.get('t') or 0):.2f}", e.get("kind"), e.get("node"), e.get("detail"))
        for e in timeline
    ]
    return ["## Timeline", "", *md_table(("t (s)", "kind", "node", "detail"), rows)]


# -- the matrix -----------------------------------------------------------------------------------
def matrix_section(runs: list[JournalRun]) -> list[str]:
    """Experiment x guard set -> excess shares, when single-guard (matrix) runs exist."""
    singles = set(GUARDS)
    if not any(r.guards in singles for r in runs):
        return []
    cells: dict[tuple[str, str], JournalRun] = {}
    for run in runs:
        if run.guards not in MATRIX_SETS:
            continue
        key = (str(run.doc["experiment"]), run.guards)
        if key not in cells or run.order > cells[key].order:
            cells[key] = run
    experiments = sorted({e for e, _ in cells})
    rows = []
    for experiment in experiments:
        row = [experiment]
        for label in MATRIX_SETS:
            run = cells.get((experiment, label))
            row.append(fmt_int(run.doc["outcome"].get("excess_shares")) if run else "—")
        rows.append(row)
    return [
        "## Defense in depth",
        "",
        "Excess shares (child shares executed beyond their parents) of the latest run of each "
        "experiment with no guard, each guard alone, and all of them. 0 means that guard, on its "
        "own, stopped the damage; — means not run.",
        "",
        *md_table(("experiment", *MATRIX_SETS), rows),
        "",
    ]


# -- the index ------------------------------------------------------------------------------------
#: The bench's side-by-side figures (toolkit/report/bench.py, observe_figures): path -> its keys.
_STOP_PATHS = {
    "knight's own monitor (a scrape every 200 ms)": "builtin",
    "Prometheus + Alertmanager (1 s scrape and evaluation, kill webhook)": "prometheus",
}


def _centi(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def stop_times_section(bench: Mapping[str, Any], incident: Mapping[str, Any]) -> list[str]:
    """The bench's detect and kill times of both paths of the monitor on one runaway, beside
    2012's; nothing when the bench has not measured them."""
    if not any(f"{key}_kill_s" in bench for key in _STOP_PATHS.values()):
        return []
    goals = bench.get("goals", {})
    rows = []
    for label, key in _STOP_PATHS.items():
        kill = bench.get(f"{key}_kill_s")
        goal = goals.get(f"{key}_kill_s", "")
        rows.append([label, _centi(bench.get(f"{key}_detect_s")), _centi(kill), goal or "—"])
    lasted = fmt_seconds(60 * incident["duration_minutes"])
    unread = incident.get("pre_open_alert_emails")
    rows.append([f"Knight Capital, 2012 ({unread} e-mails unread)", "never", lasted, "—"])
    return [
        "## Time to stop a runaway",
        "",
        "From `knight bench` (`reports/bench.json`, measured "
        f"{bench.get('measured_at', '?')}): one node runs Power Peg; both paths of the monitor "
        "watch the same run and throw the kill switch. Seconds from the first child order "
        "executed beyond its parent.",
        "",
        *md_table(("monitor", "time to detect", "time to kill", "goal (kill)"), rows),
        "",
    ]


def index_page(
    latest: list[JournalRun],
    summary: list[dict[str, str]],
    all_runs: list[JournalRun],
    skipped: list[tuple[Path, str]],
    *,
    columns: Sequence[str],
    source: str,
    journals_dir: Path,
    stop_times: Sequence[str] = (),
) -> str:
    """`summary`: the rows of `latest` (in that order), then the incident's, keyed by `columns`;
    `source`: where the incident's figures come from."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [list(row.values()) for row in summary]
    for row, run in zip(rows, latest, strict=False):  # each run's row links to its page
        row[0] = f"[{row[0]}](experiments/{run.stem}.md)"
    lines = [
        "# knight — what the experiments did",
        "",
        f"{len(all_runs)} run{'' if len(all_runs) == 1 else 's'} read from `{journals_dir}`, {now}. "
        "The latest run of each "
        "experiment, mode and guard set, and the real incident in the last row.",
        "",
        *md_table(columns, rows),
        "",
        "Excess shares are child shares executed beyond their parents' quantities. Times to "
        'detect and to kill count from the fault; "never" means nothing stopped it before the '
        'run\'s own rollbacks, "—" that there was nothing to stop. The 2012 figures: '
        f"{source}.",
        "",
        *matrix_section(all_runs),
        *stop_times,
        "## Every run",
        "",
    ]
    for run in sorted(all_runs, key=lambda r: r.order, reverse=True):
        outcome = run.doc["outcome"]
        lines.append(
            f"- [{run.stem}](experiments/{run.stem}.md): {run.doc['status']}, "
            f"{fmt_int(outcome.get('excess_shares'))} excess shares"
        )
    if not all_runs:
        lines.append("No runs yet: `knight experiment run ID --mode unsafe|guarded`.")
    if skipped:
        lines += ["", "## Skipped journals", ""]
        lines += [f"- `{p.name}`: {reason}" for p, reason in skipped]
    return "\n".join(lines) + "\n"
