"""The report's Markdown pages: one per run (its facts, outcome, fleet, steady state, expectations
and timeline), the defense-in-depth matrix, and the index that links them all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .format import fmt_int, md_table
from .journals import JournalRun
from .matrix import MATRIX_SETS, matrix
from .pages import OUTCOME_COLUMNS, facts, outcome_row, run_tables, stop_times

__all__ = [
    "MATRIX_NOTE",
    "TABLE_NOTE",
    "index_page",
    "matrix_section",
    "run_page",
    "stop_times_section",
]

#: What the matrix shows, under its title on every page that has it.
MATRIX_NOTE = (
    "Excess shares (child shares executed beyond their parents) of the latest run of each "
    "experiment with no guard, each guard alone, and all of them. 0 means that guard, on its "
    "own, stopped the damage; — means not run."
)
#: What the run table's times mean, under it on every page that has it.
TABLE_NOTE = (
    "Excess shares are child shares executed beyond their parents' quantities. Times to detect "
    'and to kill count from the fault; "never" means nothing stopped it before the run\'s own '
    'rollbacks, "—" that there was nothing to stop. "never (alerted at …, e-mails unread)": the '
    "monitor alerted, but its alerts went to a mailbox nobody reads, as in 2012."
)


# -- a run's page ---------------------------------------------------------------------------------
def run_page(run: JournalRun, plot: Path) -> str:
    """The page of one run, `plot` (its PNG, beside the page) shown under its facts."""
    doc = run.doc
    lines = [
        f"# {doc['experiment']} — {doc['mode']} (guards: {run.guards})",
        "",
        "[← the report](../index.md)",
        "",
        *md_table(("", ""), facts(doc)),
        "",
        f"![child orders per second per node]({plot.name})",
        "",
        "## Outcome",
        "",
        "Times are seconds from the fault.",
        "",
        *md_table(OUTCOME_COLUMNS, [outcome_row(doc)]),
        "",
    ]
    for table in run_tables(doc):
        lines += [f"## {table.title}", ""]
        if table.note:
            lines += [table.note]
        if table.rows:
            lines += md_table(table.header, table.rows)
        lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- the matrix -----------------------------------------------------------------------------------
def matrix_section(runs: list[JournalRun]) -> list[str]:
    """Experiment x guard set -> excess shares, when single-guard (matrix) runs exist."""
    found = matrix(runs)
    if found is None:
        return []
    rows = []
    for experiment in found.experiments:
        row = [experiment]
        for label in MATRIX_SETS:
            run = found.cell(experiment, label)
            row.append(fmt_int(run.doc["outcome"].get("excess_shares")) if run else "—")
        rows.append(row)
    return [
        "## Defense in depth",
        "",
        MATRIX_NOTE,
        "",
        *md_table(("experiment", *MATRIX_SETS), rows),
        "",
    ]


# -- the index ------------------------------------------------------------------------------------
def stop_times_section(bench: Mapping[str, Any], incident: Mapping[str, Any]) -> list[str]:
    """The bench's detect and kill times of both paths of the monitor on one runaway, beside
    2012's (pages.stop_times); nothing when the bench has not measured them."""
    table = stop_times(bench, incident)
    if table is None:
        return []
    return [f"## {table.title}", "", table.note, "", *md_table(table.header, table.rows), ""]


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
        f"{TABLE_NOTE} The 2012 figures: {source}.",
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
