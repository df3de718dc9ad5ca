"""The report: what the experiments did, in a page a person reads in a minute, beside 2012.

`build_report` reads every journal and writes `index.md` (the latest run per experiment, mode and
guard set, the Knight Capital row, the defense-in-depth matrix) and, per run, `experiments/<stem>.md`
with its timeline and `experiments/<stem>.png`: child orders per second per node over time, with the
deploy, flag, alert and kill moments marked. Unreadable journals are skipped and named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import KnightError
from toolkit.experiments.journal import GUARDS, guard_label, read_journal
from toolkit.settings import node_key

__all__ = [
    "INCIDENT_2012",
    "SUMMARY_COLUMNS",
    "ReportResult",
    "build_report",
    "fmt_int",
    "fmt_seconds",
    "fmt_usd",
    "load_incident",
    "plot_run",
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

#: Guard sets of the defense-in-depth matrix, in column order.
MATRIX_SETS = ("none", *GUARDS, "all")

#: Timeline kinds marked on the plots, and their colours.
MARKS = {
    "deploy": "#1f77b4",
    "rollback": "#9467bd",
    "flag": "#2ca02c",
    "alert": "#ff7f0e",
    "alerts": "#ff7f0e",
    "open": "#17becf",
    "fault": "#8c564b",
    "detect": "#e377c2",
    "abort": "#7f7f7f",
    "kill": "#d62728",
}
_MODE_ORDER = {"unsafe": 0, "guarded": 1}


# -- numbers for humans -----------------------------------------------------------------------------
def fmt_int(value: float | None) -> str:
    """1234567 -> 1,234,567."""
    if value is None:
        return "—"
    return f"{round(value):,}"


def fmt_usd(value: float | None) -> str:
    """460000000 -> $460M, 1234567 -> $1.2M, 950 -> $950, -1500 -> -$1.5K."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= size:
            scaled = amount / size
            text = f"{scaled:.1f}" if scaled < 100 else f"{scaled:.0f}"
            return f"{sign}${text.removesuffix('.0')}{unit}"
    return f"{sign}${amount:,.0f}"


def fmt_seconds(value: float | None, never: str = "never") -> str:
    """2.34 -> 2.3 s, 75 -> 1 min 15 s, None -> never."""
    if value is None:
        return never
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- reading --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    path: Path
    doc: dict[str, Any]

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def guards(self) -> str:
        return guard_label(self.doc.get("guards") or {})

    @property
    def key(self) -> tuple[str, str, str]:
        return (str(self.doc["experiment"]), str(self.doc["mode"]), self.guards)

    @property
    def order(self) -> tuple[str, str]:
        return (str(self.doc.get("start") or ""), self.path.name)


@dataclass
class ReportResult:
    """What `build_report` wrote, and what it could not read."""

    index: Path
    pages: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    runs: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": str(self.index),
            "pages": [str(p) for p in self.pages],
            "plots": [str(p) for p in self.plots],
            "runs": self.runs,
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "rows": self.rows,
        }


def _read_all(journals_dir: Path) -> tuple[list[_Run], list[tuple[Path, str]]]:
    runs, skipped = [], []
    for path in sorted(Path(journals_dir).glob("*.json")):
        try:
            runs.append(_Run(path, read_journal(path)))
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


def _latest(runs: Iterable[_Run]) -> list[_Run]:
    latest: dict[tuple[str, str, str], _Run] = {}
    for run in runs:
        if run.key not in latest or run.order > latest[run.key].order:
            latest[run.key] = run
    return sorted(latest.values(), key=_sort_key)


def _guard_rank(label: str) -> tuple[int, str]:
    if label in MATRIX_SETS:
        return (MATRIX_SETS.index(label), label)
    return (len(MATRIX_SETS), label)


def _sort_key(run: _Run) -> tuple[Any, ...]:
    experiment, mode, guards = run.key
    return (experiment, _MODE_ORDER.get(mode, 2), mode, _guard_rank(guards))


# -- rows -----------------------------------------------------------------------------------------
def _runaway_text(outcome: Mapping[str, Any]) -> str:
    nodes = sorted(outcome.get("runaway_nodes") or [], key=node_key)
    fleet = outcome.get("fleet_end") or {}
    if not nodes:
        return "none"
    if len(nodes) > 1 and set(nodes) == set(fleet):
        return f"all {len(nodes)}"
    return ", ".join(nodes)


def _row(run: _Run) -> dict[str, str]:
    doc, outcome = run.doc, run.doc["outcome"]
    calm = not outcome.get("excess_shares") and not outcome.get("runaway_nodes")
    never = "—" if calm else "never"
    return dict(
        zip(
            SUMMARY_COLUMNS,
            (
                str(doc["experiment"]),
                str(doc["mode"]),
                run.guards,
                str(doc["status"]),
                fmt_int(outcome.get("excess_shares")),
                _runaway_text(outcome),
                fmt_seconds(outcome.get("detected_at_s"), never),
                fmt_seconds(outcome.get("killed_at_s"), never),
                fmt_usd(outcome.get("loss_usd")),
                fmt_int(outcome.get("shares_traded")),
            ),
            strict=True,
        )
    )


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
        from toolkit.settings import load_settings

        journals_dir = load_settings().reports / "journals"
    runs, _ = _read_all(journals_dir)
    return [_row(r) for r in _latest(runs)] + [_incident_row(incident or INCIDENT_2012)]


# -- the plot -------------------------------------------------------------------------------------
def _marks(timeline: list[Mapping[str, Any]], span: float) -> list[tuple[float, str, str]]:
    """Timeline events worth a vertical line; a burst of one kind (97 alerts) becomes one mark."""
    gap = max(1.0, span * 0.02)
    marks: list[tuple[float, str, str, int]] = []
    for ev in timeline:
        kind = str(ev.get("kind"))
        if kind not in MARKS and kind != "day":
            continue
        t = float(ev.get("t") or 0.0)
        if marks and marks[-1][1] == kind and t - marks[-1][0] <= gap and kind != "day":
            first_t, _, label, count = marks[-1]
            marks[-1] = (first_t, kind, label, count + 1)
            continue
        detail = str(ev.get("detail") or "")
        node = ev.get("node")
        # "kill switch" needs no "kill" in front of it; "8.0.0 to 7 nodes" needs "deploy".
        label = detail if kind == "day" or detail.startswith(kind) else f"{kind} {detail}"
        label = label.strip() or kind
        if node and node not in label:
            label += f" ({node})"
        marks.append((t, kind, label[:40], 1))
    return [(t, kind, label if n == 1 else f"{label} ×{n}") for t, kind, label, n in marks]


def plot_run(doc: Mapping[str, Any], path: Path) -> Path:
    """Child orders per second per node over time (runaway nodes drawn heavy), with the run's
    deploy / flag / alert / kill (and other) moments as labelled vertical lines; PNG at `path`."""
    from matplotlib.figure import Figure

    series = doc.get("series") or {}
    t = list(series.get("t") or [])
    per_node = series.get("child_orders_per_s") or {}
    runaway = set((doc.get("outcome") or {}).get("runaway_nodes") or [])
    timeline = list(doc.get("timeline") or [])
    span = max([*t, *(float(e.get("t") or 0) for e in timeline), 1.0])

    fig = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    palette = [f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]  # not C7, a grey
    peak = 0.0
    for i, node in enumerate(sorted(per_node, key=node_key)):
        values = [math.nan if v is None else v for v in per_node[node]][: len(t)]
        heavy = node in runaway
        peak = max([peak, *(v for v in values if not math.isnan(v))])
        ax.plot(
            t[: len(values)],
            values,
            color=palette[i % len(palette)],
            linewidth=2.6 if heavy else 1.0,
            alpha=1.0 if heavy else 0.5,
            zorder=3 if heavy else 2,
            label=f"{node} — runaway" if heavy else node,
        )
    axis = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for when, kind, label in _marks(timeline, span):
        if kind == "day":
            ax.axvline(when, color="#999999", linestyle=":", linewidth=0.8, zorder=1)
            ax.text(
                when,
                0.02,
                f" {label}",
                transform=axis,
                rotation=90,
                fontsize=7,
                va="bottom",
                ha="left",
                color="#555555",
                bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5},
            )
            continue
        colour = MARKS[kind]
        ax.axvline(when, color=colour, linestyle="--", linewidth=1.0, zorder=1)
        ax.text(
            when,
            0.98,
            f"{label} ",
            transform=axis,
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
            color=colour,
        )
    if not t:
        ax.text(
            0.5,
            0.5,
            "no samples recorded",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#777777",
        )
    ax.set_xlim(0, span * 1.02)
    # Headroom above the data, so the labels of the marks do not cross the lines.
    ax.set_ylim(0, max(peak, 1.0) * 1.6)
    ax.set_xlabel("seconds from the start of the run")
    ax.set_ylabel("child orders per second")
    guards = guard_label(doc.get("guards") or {})
    ax.set_title(f"{doc.get('experiment')} — {doc.get('mode')}, guards: {guards}", fontsize=11)
    ax.grid(True, alpha=0.25)
    if per_node:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# -- Markdown -------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _run_page(run: _Run, plot: Path) -> str:
    doc, outcome = run.doc, run.doc["outcome"]
    guards = doc.get("guards") or {}
    on = [g for g in GUARDS if guards.get(g)]
    met = doc.get("expectations_met")
    lines = [
        f"# {doc['experiment']} — {doc['mode']} (guards: {run.guards})",
        "",
        "[← the report](../index.md)",
        "",
        *_table(
            ("", ""),
            [
                (
                    "status",
                    f"{doc['status']}"
                    + (" (steady state broken after)" if doc.get("deviated") else ""),
                ),
                ("expectations", "—" if met is None else ("met" if met else "NOT met")),
                ("start", doc.get("start")),
                ("duration", fmt_seconds(doc.get("duration_s"), "—")),
                ("guards on", ", ".join(on) or "none"),
                ("parameters", doc.get("parameters") or {}),
            ],
        ),
        "",
        f"![child orders per second per node]({plot.name})",
        "",
        "## Outcome",
        "",
        "Times are seconds from the fault.",
        "",
        *_table(
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
                    _runaway_text(outcome),
                    fmt_seconds(outcome.get("detected_at_s")),
                    fmt_seconds(outcome.get("killed_at_s")),
                    fmt_usd(outcome.get("loss_usd")),
                )
            ],
        ),
        "",
    ]
    fleet = outcome.get("fleet_end") or {}
    if fleet:
        lines += ["## Fleet at the end", ""]
        lines += _table(("node", "release"), sorted(fleet.items(), key=lambda kv: node_key(kv[0])))
        lines.append("")
    steady = doc.get("steady_state") or {}
    probes = [
        (phase, *_probe_cells(r)) for phase in ("before", "after") for r in steady.get(phase) or []
    ]
    if probes:
        lines += ["## Steady state", ""]
        lines += _table(("when", "probe", "tolerance", "observed", "held"), probes)
        lines.append("")
    expectations = doc.get("expectations") or []
    if expectations:
        lines += ["## Expectations", ""]
        lines += _table(
            ("expectation", "expected", "actual", "met"),
            [
                (e.get("name"), e.get("expected"), e.get("actual"), e.get("met"))
                for e in expectations
            ],
        )
        lines.append("")
    lines += ["## Timeline", ""]
    timeline = doc.get("timeline") or []
    if timeline:
        lines += _table(
            ("t (s)", "kind", "node", "detail"),
            [
                (f"{float(e.get('t') or 0):.2f}", e.get("kind"), e.get("node"), e.get("detail"))
                for e in timeline
            ],
        )
    else:
        lines.append("No events were recorded.")
    return "\n".join(lines) + "\n"


def _probe_cells(result: Mapping[str, Any]) -> tuple[Any, ...]:
    return (result.get("probe"), result.get("tolerance"), result.get("value"), result.get("ok"))


def _matrix(runs: list[_Run]) -> list[str]:
    """Experiment x guard set -> excess shares, when single-guard (matrix) runs exist."""
    singles = {g for g in GUARDS}
    if not any(r.guards in singles for r in runs):
        return []
    cells: dict[tuple[str, str], _Run] = {}
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
        *_table(("experiment", *MATRIX_SETS), rows),
        "",
    ]


def _index(
    latest: list[_Run],
    summary: list[dict[str, str]],
    all_runs: list[_Run],
    skipped: list[tuple[Path, str]],
    incident: Mapping[str, Any],
    journals_dir: Path,
) -> str:
    """`summary`: the rows of `latest` (in that order), then the incident's."""
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
        *_table(SUMMARY_COLUMNS, rows),
        "",
        "Excess shares are child shares executed beyond their parents' quantities. Times to "
        'detect and to kill count from the fault; "never" means nothing stopped it before the '
        'run\'s own rollbacks, "—" that there was nothing to stop. The 2012 figures: '
        f"{incident.get('source', INCIDENT_2012['source'])}.",
        "",
        *_matrix(all_runs),
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


def build_report(
    journals_dir: Path,
    out_dir: Path,
    *,
    incident: Mapping[str, Any] | None = None,
    force: bool = False,
) -> ReportResult:
    """Write `out_dir/index.md` and, per journal, `out_dir/experiments/<stem>.md` and `.png`.
    A run's page and plot are redrawn only when its journal is newer (or `force`)."""
    journals_dir, out_dir = Path(journals_dir), Path(out_dir)
    incident = incident or INCIDENT_2012
    runs, skipped = _read_all(journals_dir)
    latest = _latest(runs)
    result = ReportResult(index=out_dir / "index.md", runs=len(runs), skipped=skipped)
    runs_dir = out_dir / "experiments"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        plot, page = runs_dir / f"{run.stem}.png", runs_dir / f"{run.stem}.md"
        stale = force or any(
            not p.exists() or p.stat().st_mtime < run.path.stat().st_mtime for p in (plot, page)
        )
        if stale:
            plot_run(run.doc, plot)
            _write(page, _run_page(run, plot))
        result.plots.append(plot)
        result.pages.append(page)
    result.rows = [_row(r) for r in latest] + [_incident_row(incident)]
    _write(result.index, _index(latest, result.rows, runs, skipped, incident, journals_dir))
    return result


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
