"""The per-run plot: child orders per second per node over time, runaway nodes drawn heavy, with
every deploy, flag, fault, guard event and kill of the run as a labelled vertical line, and every
alert as a tick along the foot (a runaway raises hundreds), each burst of them labelled.

Labels of marks close in time are laid out side by side (each tied to its line by a leader)
rather than drawn on top of each other; a burst of one alert (the same rule on eight nodes) shares
one label. The plot is drawn once and saved as a PNG (the Markdown page) and an SVG (the HTML page
inlines it, its text kept as text).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.experiments.journal import guard_label
from toolkit.settings import node_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LABEL_GID",
    "MARKS",
    "Mark",
    "RunPlot",
    "draw_run",
    "label_groups",
    "mark_colour",
    "marks",
    "plot_run",
]

#: Timeline kinds marked on the plots, and their colours.
MARKS = {
    "deploy": "#1f77b4",
    "rollback": "#9467bd",
    "flag": "#2ca02c",
    "alert": "#ff7f0e",
    "alerts": "#ff7f0e",
    "open": "#17becf",
    "fault": "#8c564b",
    "runaway": "#111111",
    "guard": "#8a8a00",
    "detect": "#e377c2",
    "abort": "#7f7f7f",
    "kill": "#d62728",
}
#: Kinds drawn as another kind: the run's own rollbacks throw the kill switch too.
_ALIASES = {"rollback_kill": "kill"}
#: The gids of the marks' labels in the figure (and ids in its SVG) start with this.
LABEL_GID = "mark-label"
#: A label's text is cut to this many characters.
_LABEL_CHARS = 40
#: Alerts are ticks at the foot of the axes, this fraction of its height.
_TICK = 0.04
#: Space between two labels side by side, in points.
_LABEL_GAP_PT = 1.5

#: Line colours of the nodes: matplotlib's cycle without C7, a grey.
_PALETTE = [f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]


def mark_colour(kind: str) -> str | None:
    """The colour a timeline kind is marked in; None for a kind not marked."""
    return MARKS.get(_ALIASES.get(kind, kind))


@dataclass(frozen=True)
class Mark:
    """One timeline event drawn as a vertical line: `label` is its text, `group` what a burst of
    such events shares (the label without its node)."""

    t: float
    kind: str
    label: str
    group: str
    node: str | None = None


@dataclass
class RunPlot:
    """A run's plot as written: the PNG beside the Markdown page, the SVG text for the HTML."""

    png: Path
    svg: str = field(repr=False)


def _label(kind: str, event: Mapping[str, Any]) -> str:
    detail = str(event.get("detail") or "").strip()
    if kind == "alert" and detail:
        return f"alert {detail.split()[0]}"  # the rule: owner, runbook and summary are the page's
    if kind == "runaway":
        return "fault: first runaway child order"
    if kind == "day" or detail.startswith(kind):
        return detail or kind
    return f"{kind} {detail}".strip()  # "8.0.0 to 7 nodes" needs "deploy"


def marks(timeline: Sequence[Mapping[str, Any]]) -> list[Mark]:
    """Every timeline event worth a vertical line, in time order (days included)."""
    found = []
    for event in timeline:
        kind = str(event.get("kind"))
        kind = _ALIASES.get(kind, kind)
        if kind not in MARKS and kind != "day":
            continue
        group = _label(kind, event)
        if len(group) > _LABEL_CHARS:
            group = group[: _LABEL_CHARS - 1] + "…"
        node = event.get("node") or None
        label = f"{group} ({node})" if node and node not in group else group
        found.append(Mark(float(event.get("t") or 0.0), kind, label, group, node))
    return sorted(found, key=lambda m: m.t)


def label_groups(found: Sequence[Mark], gap: float, *, by_kind: bool = False) -> list[list[Mark]]:
    """Marks that share one label: a run of the same kind and label (or, `by_kind`, the same
    kind) each within `gap` seconds of the one before. Days are never grouped."""
    groups: list[list[Mark]] = []
    for mark in found:
        last = groups[-1][-1] if groups else None
        same = last is not None and last.kind == mark.kind and mark.kind != "day"
        if same and (by_kind or last.group == mark.group) and mark.t - last.t <= gap:
            groups[-1].append(mark)
        else:
            groups.append([mark])
    return groups


def _group_text(group: Sequence[Mark]) -> str:
    if len(group) == 1:
        return group[0].label
    first = group[0]
    if all(m.group == first.group for m in group):
        nodes = sorted({m.node for m in group if m.node}, key=node_key)
        on = f" ({', '.join(nodes)})" if 0 < len(nodes) <= 2 else ""
        return f"{first.group} ×{len(group)}{on}"
    return f"{first.kind} ×{len(group)}"


def draw_run(doc: Mapping[str, Any]) -> Figure:
    """The run's figure: child orders per second per node over time (runaway nodes heavy), and
    its marks with their labels laid out so that none covers another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # slow to import: only here
    from matplotlib.figure import Figure

    series = doc.get("series") or {}
    t = list(series.get("t") or [])
    per_node = series.get("child_orders_per_s") or {}
    runaway = set((doc.get("outcome") or {}).get("runaway_nodes") or [])
    timeline = list(doc.get("timeline") or [])
    span = max([*t, *(float(e.get("t") or 0) for e in timeline), 1.0])

    fig = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    peak = _draw_nodes(ax, t, per_node, runaway)
    if not t:
        ax.text(0.5, 0.5, "no samples recorded", transform=ax.transAxes, ha="center",
                va="center", color="#777777")  # fmt: skip
    _label_axes(ax, doc, span=span, peak=peak, legend=bool(per_node))
    found = marks(timeline)
    _draw_lines(ax, found)
    fig.draw_without_rendering()  # the axes' final place, which the labels' layout needs
    fig.set_layout_engine("none")  # and there they stay: the labels are laid out for it
    _draw_labels(ax, [m for m in found if m.kind != "day"], span, top=True)
    _draw_labels(ax, [m for m in found if m.kind == "day"], span, top=False)
    return fig


def plot_run(doc: Mapping[str, Any], path: Path) -> RunPlot:
    """Draw the run; write the PNG at `path` and return it with the SVG's text."""
    from matplotlib import rc_context

    fig = draw_run(doc)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    svg = io.StringIO()
    # Text stays text in the SVG (searchable, and readable by the page's tests); no metadata
    # date, so the same journal always draws the same SVG.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "knight"}):
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return RunPlot(path, svg.getvalue())


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


def _draw_lines(ax: Axes, found: Sequence[Mark]) -> None:
    """One vertical line per mark: days grey and dotted, events dashed in their kind's colour;
    alerts, which come by the hundred in a runaway, as a tick each along the foot, drawn as one
    collection `mark-alerts` (the first of each label's burst gets its dashed line with the
    label)."""
    for i, mark in enumerate(found):
        if mark.kind == "day":
            line = ax.axvline(mark.t, color="#999999", linestyle=":", linewidth=0.8, zorder=1)
        elif mark.kind == "alert":
            continue
        else:
            line = ax.axvline(
                mark.t, color=MARKS[mark.kind], linestyle="--", linewidth=1.0, zorder=1
            )
        line.set_gid(f"mark-{mark.kind}-{i}")
    alerts = [m.t for m in found if m.kind == "alert"]
    if alerts:
        ticks = ax.vlines(alerts, 0, _TICK, transform=ax.get_xaxis_transform(),
                          colors=MARKS["alert"], linewidth=0.8, zorder=4)  # fmt: skip
        ticks.set_gid("mark-alerts")


def _draw_labels(ax: Axes, found: Sequence[Mark], span: float, *, top: bool) -> None:
    """The labels of `found` along the top (events) or the foot (days) of the axes, side by
    side: each at its line when there is room, else moved right (or left, at the edge) and tied
    to its line by a leader. A burst of the same label shares one; when even that does not fit,
    a burst of one kind does."""
    if not found:
        return
    fig = ax.get_figure()
    assert fig is not None
    points = 72 / fig.dpi
    box = ax.get_window_extent()
    gap = max(1.0, span * 0.02)
    groups = label_groups(found, gap)
    width = _label_width(ax, points) + _LABEL_GAP_PT
    if len(groups) * width > box.width * points:
        groups = label_groups(found, gap, by_kind=True)
    at = [float(ax.transData.transform((g[0].t, 0))[0] - box.x0) * points for g in groups]
    placed = _side_by_side(at, width, box.width * points)
    axis = ax.get_xaxis_transform()  # x in data, y in axes fraction
    row = "top" if top else "foot"
    # With a label moved, every label of the row leaves a band free for the leaders to cross.
    band = 8.0 if any(abs(g - w) > 0.5 for g, w in zip(placed, at, strict=True)) else 1.0
    for i, (group, want, got) in enumerate(zip(groups, at, placed, strict=True)):
        colour = "#555555" if group[0].kind == "day" else MARKS[group[0].kind]
        if group[0].kind == "alert":  # the label's line, from its ticks up to it
            line = ax.axvline(group[0].t, color=colour, linestyle="--", linewidth=0.8, zorder=1)
            line.set_gid(f"label-line-{row}-{i}")
        moved = abs(got - want) > 0.5
        text = ax.annotate(
            f" {_group_text(group)} " if top else f" {_group_text(group)}",
            xy=(group[0].t, 1.0 if top else 0.0),
            xycoords=axis,
            xytext=(got - want, -band if top else band),
            textcoords="offset points",
            rotation=90,
            fontsize=7,
            va="top" if top else "bottom",
            ha="center",
            color=colour,
            annotation_clip=False,
            arrowprops=_leader(colour, top) if moved else None,
            bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5},
        )
        text.set_parse_math(False)  # "$460M" is money, not mathematics
        text.set_in_layout(False)
        text.set_gid(f"{LABEL_GID}-{row}-{i}")


def _leader(colour: str, top: bool) -> dict[str, Any]:
    """A thin line from the label's end nearest the edge (not its middle, which would cross
    its neighbours) to its mark's line at the edge."""
    return {
        "arrowstyle": "-",
        "color": colour,
        "linewidth": 0.6,
        "relpos": (0.5, 1.0 if top else 0.0),
        "shrinkA": 0,
        "shrinkB": 0,
    }


def _label_width(ax: Axes, points: float) -> float:
    """How wide (in points) a vertical label is: the height of a line of its text."""
    fig = ax.get_figure()
    assert fig is not None
    probe = ax.text(0, 0, "Mg×(", fontsize=7, rotation=90)
    extent = probe.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    probe.remove()
    return float(extent.width) * points + 2.0  # the bbox's pad on both sides


def _side_by_side(wanted: Sequence[float], width: float, limit: float) -> list[float]:
    """Positions (centres, in points from the axes' left) no closer than `width` to each other,
    each as near its wanted one as the others allow, kept inside [0, limit] when they fit."""
    placed: list[float] = []
    for want in wanted:  # left to right: push right what would cover the one before
        placed.append(max(want, placed[-1] + width) if placed else max(want, width / 2))
    ceiling = limit - width / 2
    for i in range(len(placed) - 1, -1, -1):  # right to left: pull back what ran off the edge
        nxt = placed[i + 1] - width if i + 1 < len(placed) else ceiling
        placed[i] = min(placed[i], nxt)
    return placed


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
    title = ax.set_title(
        f"{doc.get('experiment')} — {doc.get('mode')}, guards: {guards}", fontsize=11
    )
    title.set_parse_math(False)
    ax.grid(True, alpha=0.25)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
