"""The per-run plot: child orders per second per node over time, runaway nodes drawn heavy, with
the run's deploy, flag, alert and kill (and other) moments as labelled vertical lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.experiments.journal import guard_label
from toolkit.settings import node_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["MARKS", "plot_run"]

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

#: Line colours of the nodes: matplotlib's cycle without C7, a grey.
_PALETTE = [f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]


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
    from matplotlib.figure import Figure  # slow to import: only when a plot is drawn

    series = doc.get("series") or {}
    t = list(series.get("t") or [])
    per_node = series.get("child_orders_per_s") or {}
    runaway = set((doc.get("outcome") or {}).get("runaway_nodes") or [])
    timeline = list(doc.get("timeline") or [])
    span = max([*t, *(float(e.get("t") or 0) for e in timeline), 1.0])

    fig = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    peak = _draw_nodes(ax, t, per_node, runaway)
    _draw_marks(ax, timeline, span)
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
    _label_axes(ax, doc, span=span, peak=peak, legend=bool(per_node))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _draw_nodes(
    ax: Axes, t: list[float], per_node: Mapping[str, list[float | None]], runaway: set[str]
) -> float:
    """One line per node (gaps where a sample is missing); returns the highest rate drawn."""
    peak = 0.0
    for i, node in enumerate(sorted(per_node, key=node_key)):
        values = [math.nan if v is None else v for v in per_node[node]][: len(t)]
        heavy = node in runaway
        peak = max([peak, *(v for v in values if not math.isnan(v))])
        ax.plot(
            t[: len(values)],
            values,
            color=_PALETTE[i % len(_PALETTE)],
            linewidth=2.6 if heavy else 1.0,
            alpha=1.0 if heavy else 0.5,
            zorder=3 if heavy else 2,
            label=f"{node} — runaway" if heavy else node,
        )
    return peak


def _draw_marks(ax: Axes, timeline: list[Mapping[str, Any]], span: float) -> None:
    """The timeline's marks: days as grey dotted lines labelled at the foot, events as dashed
    lines in their kind's colour labelled at the top."""
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


def _label_axes(
    ax: Axes, doc: Mapping[str, Any], *, span: float, peak: float, legend: bool
) -> None:
    """Limits, axis labels, the run's title, the grid and (with nodes drawn) the legend."""
    ax.set_xlim(0, span * 1.02)
    # Headroom above the data, so the labels of the marks do not cross the lines.
    ax.set_ylim(0, max(peak, 1.0) * 1.6)
    ax.set_xlabel("seconds from the start of the run")
    ax.set_ylabel("child orders per second")
    guards = guard_label(doc.get("guards") or {})
    ax.set_title(f"{doc.get('experiment')} — {doc.get('mode')}, guards: {guards}", fontsize=11)
    ax.grid(True, alpha=0.25)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
