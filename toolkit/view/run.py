"""The live table of one experiment run, drawn from its journal while the run fills it: per node
its release, what each flag the experiment sets means to its code, parent and child orders per
second, excess shares, alerts and marks (a fault, a refused step, the kill switch); above it the
step under way, the time since the start and, once it ends, the run's status; below it the
latest guard events. The journal is
the only source: what is shown here is what the journal records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from toolkit.experiments.journal import Event, Journal, NodeSample, guard_label

from .progress import Countdown

__all__ = ["FLEET_EVENTS", "RunView", "RunsView", "node_marks"]

#: Events of the fleet shown under the table (the latest few): what the guards and the lab's
#: safety nets did.
FLEET_EVENTS = ("guard", "kill", "abort", "stop", "runaway", "interrupted", "error")
#: How many of them.
SHOWN_EVENTS = 3


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _flag(entry: Mapping[str, Any] | None) -> Text:
    """What the flag means to the node's code, on or off; red where it is on and the code runs
    something else than its declared meaning."""
    if not entry:
        return Text("-", style="dim")
    code = entry.get("code_meaning") or "unread"
    on = bool(entry.get("on"))
    text = Text(f"{code} {'on' if on else 'off'}")
    if on and entry.get("code_meaning") and entry.get("meaning") != entry.get("code_meaning"):
        text.stylize("bold red")
    elif on:
        text.stylize("green")
    return text


def node_marks(node: str, events: Sequence[Event], sample: NodeSample | None) -> list[str]:
    """The node's marks: a fault on it, a step refused or failed on it, its kill switch on."""
    marks: list[str] = []
    for ev in events:
        if ev.node != node:
            continue
        if ev.kind == "fault":
            marks.append("fault")
        elif ev.kind.endswith("_refused"):
            marks.append("refused")
        elif ev.kind.endswith("_failed"):
            marks.append("failed")
    if sample is not None and sample.trading is False:
        marks.append("killed")
    return list(dict.fromkeys(marks))


def _alerts(node: str, events: Sequence[Event]) -> Text:
    raised = [ev for ev in events if ev.kind == "alert" and ev.node == node]
    if not raised:
        return Text("")
    rule = raised[-1].detail.split(" ", 1)[0]
    return Text(f"{len(raised)} {rule}", style="bold yellow")


class RunView:
    """A rich renderable: the run's journal (handed over by `observe` once the run has one),
    drawn anew each time it is rendered."""

    def __init__(self, nodes: Sequence[str], journal: Journal | None = None) -> None:
        self.nodes = list(nodes)
        self._journal = journal

    def observe(self, journal: Journal) -> None:
        self._journal = journal

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("no run to show yet")
        return self._journal

    def __rich__(self) -> RenderableType:
        if self._journal is None:
            return Text("the run is starting", style="dim")
        events = list(self.journal.timeline)  # a copy: the run appends while this draws
        latest = self.journal.latest_sample()
        t, samples = latest if latest is not None else (None, {})
        return Group(
            self._header(events),
            self._table(events, samples, t),
            *self._footer(events),
        )

    def _elapsed(self) -> float:
        j = self.journal
        return j.duration_s if j.duration_s is not None else j.elapsed()

    def _header(self, events: Sequence[Event]) -> Text:
        j = self.journal
        line = Text(f"{j.experiment}", style="bold")
        line.append(f" · {j.mode} · guards {guard_label(j.guards)} · ")
        line.append(f"{self._elapsed():.1f}s", style="bold cyan")
        if j.status is not None:
            line.append(f" · {j.status}", style="bold")
        steps = [ev for ev in events if ev.kind == "step"]
        now = steps[-1].detail if steps else (events[-1].kind if events else "starting")
        line.append("\nstep ", style="bold")
        line.append(now)
        return line

    def _table(
        self, events: Sequence[Event], samples: Mapping[str, NodeSample], t: float | None
    ) -> Table:
        flags = sorted({name for s in samples.values() for name in s.flags})
        caption = "no sample yet" if t is None else f"sampled at {t:.1f}s"
        table = Table(caption=caption, caption_justify="left")
        table.add_column("node", no_wrap=True)
        table.add_column("release", no_wrap=True)
        for name in flags:
            table.add_column(name, no_wrap=True)
        for header in ("parents/s", "children/s", "excess"):
            table.add_column(header, justify="right", no_wrap=True)
        table.add_column("alerts", no_wrap=True)
        table.add_column("marks", no_wrap=True)
        for node in self.nodes:
            s = samples.get(node)
            release = Text(s.release) if s and s.release else Text("-", style="dim")
            excess = s.excess_shares if s else None
            table.add_row(
                node,
                release,
                *(_flag(s.flags.get(name) if s else None) for name in flags),
                _rate(s.parent_orders_per_s if s else None),
                _rate(s.child_orders_per_s if s else None),
                Text("-" if excess is None else f"{excess:,}", style="bold red" if excess else ""),
                _alerts(node, events),
                Text(" ".join(node_marks(node, events, s)), style="red"),
            )
        return table

    def _footer(self, events: Sequence[Event]) -> list[Text]:
        shown = [ev for ev in events if ev.kind in FLEET_EVENTS or ev.kind.endswith("_refused")]
        lines = []
        for ev in sorted(shown, key=lambda e: e.t)[-SHOWN_EVENTS:]:
            line = Text(f"{ev.t:7.2f}s {ev.kind}: ", style="bold")
            line.append(ev.detail)
            line.no_wrap, line.overflow = True, "ellipsis"
            lines.append(line)
        return lines


class RunsView:
    """Runs one after another (the matrix): how many are done and the time left, above the run
    under way."""

    def __init__(self, countdown: Countdown, nodes: Sequence[str]) -> None:
        self.countdown = countdown
        self.run = RunView(nodes)
        self._journals: list[Journal] = []

    def observe(self, journal: Journal) -> None:
        self._journals.append(journal)
        self.run.observe(journal)

    def __rich__(self) -> RenderableType:
        self.countdown.done = sum(j.status is not None for j in self._journals)
        return Group(self.countdown, self.run)
