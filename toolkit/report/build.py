"""The report: what the experiments did, in a page a person reads in a minute, beside 2012.

This module reads the journals, holds the 2012 incident figures, makes the summary rows and
writes the report with `build_report`: `index.md` and `index.html` (the latest run per experiment,
mode and guard set, the Knight Capital row, the defense-in-depth matrix) and, per run,
`experiments/<stem>.md`, `.html` and `.png`. Unreadable journals are skipped and named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import KnightError
from toolkit.settings import load_settings

from .format import detect_text, fmt_int, fmt_seconds, fmt_usd, runaway_text
from .html import html_index, html_run_page
from .journals import KNIGHT, RUNNERS, JournalRun, read_run
from .markdown import index_page, run_page, stop_times_section
from .matrix import MATRIX_SETS
from .pages import stop_times
from .plot import plot_run

__all__ = [
    "INCIDENT_2012",
    "INCIDENT_FILE",
    "SUMMARY_COLUMNS",
    "ReportResult",
    "build_report",
    "load_incident",
    "summary_rows",
]

#: The 2012 figures (SEC Release 34-70694), as data: used when no other incident file is given.
INCIDENT_FILE = Path(__file__).resolve().parent.parent / "data" / "knight_2012.json"
INCIDENT_2012: dict[str, Any] = json.loads(INCIDENT_FILE.read_text(encoding="utf-8"))

SUMMARY_COLUMNS = (
    "experiment",
    "mode",
    "guards",
    "status",
    "excess shares",
    "runaway nodes",
    "time to detect",
    "time to kill",
    "loss",
    "shares traded",
)

_MODE_ORDER = {"unsafe": 0, "guarded": 1}


@dataclass
class ReportResult:
    """What `build_report` wrote, and what it could not read."""

    index: Path
    html: Path
    pages: list[Path] = field(default_factory=list)
    html_pages: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    runs: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "html": str(self.html),
            "pages": [str(p) for p in self.pages],
            "html_pages": [str(p) for p in self.html_pages],
            "plots": [str(p) for p in self.plots],
            "runs": self.runs,
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "rows": self.rows,
        }


# -- reading --------------------------------------------------------------------------------------
def _read_all(journals_dir: Path) -> tuple[list[JournalRun], list[tuple[Path, str]]]:
    runs, skipped = [], []
    for path in sorted(Path(journals_dir).glob("*.json")):
        try:
            runs.append(JournalRun(path, read_run(path)))
        except KnightError as exc:
            skipped.append((path, str(exc).removeprefix(f"{path}: ")))
    return runs, skipped


def load_incident(path: Path | None = None) -> dict[str, Any]:
    """The 2012 figures: from a JSON file like `knight_2012.json`, the shipped ones filling in
    what it leaves out; the shipped ones alone without a file."""
    if path is None:
        return dict(INCIDENT_2012)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KnightError(f"{path}: cannot read the 2012 figures: {exc}") from None
    return {**INCIDENT_2012, **doc}


def _latest(runs: Iterable[JournalRun]) -> list[JournalRun]:
    latest: dict[tuple[str, str, str, str], JournalRun] = {}
    for run in runs:
        if run.key not in latest or run.order > latest[run.key].order:
            latest[run.key] = run
    return sorted(latest.values(), key=_sort_key)


def _guard_rank(label: str) -> tuple[int, str]:
    if label in MATRIX_SETS:
        return (MATRIX_SETS.index(label), label)
    return (len(MATRIX_SETS), label)


def _sort_key(run: JournalRun) -> tuple[Any, ...]:
    experiment, mode, guards, runner = run.key
    return (experiment, _MODE_ORDER.get(mode, 2), mode, _guard_rank(guards), runner != KNIGHT)


# -- rows -----------------------------------------------------------------------------------------
def _row(run: JournalRun) -> dict[str, str]:
    doc, outcome = run.doc, run.doc["outcome"]
    calm = not outcome.get("excess_shares") and not outcome.get("runaway_nodes")
    never = "—" if calm else "never"
    return dict(
        zip(
            SUMMARY_COLUMNS,
            (
                _experiment_cell(run),
                str(doc["mode"]),
                run.guards,
                str(doc["status"]),
                fmt_int(outcome.get("excess_shares")),
                runaway_text(outcome),
                detect_text(doc, never),
                fmt_seconds(outcome.get("killed_at_s"), never),
                fmt_usd(outcome.get("loss_usd")),
                fmt_int(outcome.get("shares_traded")),
            ),
            strict=True,
        )
    )


def _experiment_cell(run: JournalRun) -> str:
    """The experiment; a run knight's own runner did not make says whose it was."""
    experiment = str(run.doc["experiment"])
    return experiment if run.runner == KNIGHT else f"{experiment} ({RUNNERS[run.runner]})"


def _incident_row(incident: Mapping[str, Any]) -> dict[str, str]:
    servers = incident.get("servers", 8)
    skipped = incident.get("servers_skipped_in_deploy", 1)
    alerts = incident.get("pre_open_alert_emails")
    minutes = incident.get("duration_minutes")
    return dict(
        zip(
            SUMMARY_COLUMNS,
            (
                f"Knight Capital, {incident.get('incident_date', '2012-08-01')}",
                "production",
                "none",
                "—",
                "—",
                f"{skipped} of {servers} servers, then all {servers} after the rollback",
                f"never ({alerts} e-mails unread)" if alerts else "never",
                f"~{minutes} min" if minutes else "—",
                fmt_usd(incident.get("loss_usd")),
                fmt_int(incident.get("shares_traded")),
            ),
            strict=True,
        )
    )


def summary_rows(
    journals_dir: Path | None = None, *, incident: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """The report's table as text cells keyed by SUMMARY_COLUMNS: the latest run per experiment,
    mode and guard set, then the 2012 row. For the CLI to print as a table."""
    if journals_dir is None:
        journals_dir = load_settings().reports / "journals"
    runs, _ = _read_all(journals_dir)
    return [_row(r) for r in _latest(runs)] + [_incident_row(incident or INCIDENT_2012)]


# -- writing --------------------------------------------------------------------------------------
def build_report(
    journals_dir: Path,
    out_dir: Path,
    *,
    incident: Mapping[str, Any] | None = None,
    force: bool = False,
) -> ReportResult:
    """Write `out_dir/index.md` and `index.html` and, per journal, `out_dir/experiments/<stem>`
    `.md`, `.html` and `.png`. A run's pages and plot are redrawn only when its journal is newer
    (or `force`)."""
    journals_dir, out_dir = Path(journals_dir), Path(out_dir)
    incident = incident or INCIDENT_2012
    runs, skipped = _read_all(journals_dir)
    latest = _latest(runs)
    result = ReportResult(
        index=out_dir / "index.md", html=out_dir / "index.html", runs=len(runs), skipped=skipped
    )
    runs_dir = out_dir / "experiments"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        plot, page, html = _write_run(run, runs_dir, force)
        result.plots.append(plot)
        result.pages.append(page)
        result.html_pages.append(html)
    result.rows = [_row(r) for r in latest] + [_incident_row(incident)]
    args = (latest, result.rows, runs, skipped)
    kwargs: dict[str, Any] = {
        "columns": SUMMARY_COLUMNS,
        "source": incident.get("source", INCIDENT_2012["source"]),
        "journals_dir": journals_dir,
    }
    bench = _bench(out_dir / "bench.json")
    _write(
        result.index, index_page(*args, **kwargs, stop_times=stop_times_section(bench, incident))
    )
    _write(result.html, html_index(*args, **kwargs, stop_times=stop_times(bench, incident)))
    return result


def _write_run(run: JournalRun, runs_dir: Path, force: bool) -> tuple[Path, Path, Path]:
    """A run's plot, Markdown page and HTML page, redrawn when its journal is newer."""
    plot, page, html = (runs_dir / f"{run.stem}{ext}" for ext in (".png", ".md", ".html"))
    stale = force or any(
        not p.exists() or p.stat().st_mtime < run.path.stat().st_mtime for p in (plot, page, html)
    )
    if stale:
        drawn = plot_run(run.doc, plot)
        _write(page, run_page(run, plot))
        _write(html, html_run_page(run, drawn.svg))
    return plot, page, html


def _bench(path: Path) -> dict[str, Any]:
    """The bench's figures (`knight bench` writes them beside the report), {} when none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
