"""What a run records as it goes, beside its steps: every node as the monitor's last round saw it
(release, kill switch, the experiment's flags, parent and child orders per second) with its
excess shares at the venue, into the journal's `series.samples`; and the monitor's alerts and
kills into the timeline as they come. Nothing polls for this: the abort watcher hands over the
venue's counts it reads anyway, and the monitor already scrapes every node."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from toolkit.monitor import Monitor, MonitorResult, NodeState

from .journal import NodeSample

if TYPE_CHECKING:
    from .model import Experiment
    from .state import RunState

__all__ = ["Sampler", "flag_names", "node_sample"]

log = logging.getLogger("knight.experiments")


def flag_names(experiment: Experiment) -> list[str]:
    """The flags the experiment's steps set (method, then rollbacks), each once."""
    steps = (*experiment.method, *experiment.rollbacks)
    return list(dict.fromkeys(str(s.args["name"]) for s in steps if s.name == "flag"))


def node_sample(
    state: NodeState | None, venue: Mapping[str, Any] | None, flags: list[str]
) -> NodeSample:
    """One node: its own metrics (`state`, None or not up: it did not answer) and its venue
    counts (`venue`, None: the venue did not answer)."""
    excess = None if venue is None else int(venue.get("excess_shares", 0))
    if state is None or not state.up:
        return NodeSample(excess_shares=excess)

    def rate(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return NodeSample(
        release=state.release,
        trading=state.trading,
        flags={
            name: {"on": f.on, "meaning": f.meaning, "code_meaning": f.code_meaning}
            for name, f in state.flags.items()
            if name in flags
        },
        parent_orders_per_s=rate(state.parent_orders_per_s),
        child_orders_per_s=rate(state.child_orders_per_s),
        excess_shares=excess,
    )


class Sampler:
    """Called with the venue's `/stats` (None when it did not answer) each time the abort
    watcher reads them; `record` puts the monitor's alerts and kills not yet in the timeline
    there (the run calls it once more with what the monitor saw in the end)."""

    def __init__(self, run: RunState, monitor: Monitor | None) -> None:
        self.run = run
        self.monitor = monitor
        self.flags = flag_names(run.experiment)
        self._recorded: set[tuple[Any, ...]] = set()

    def __call__(self, stats: Mapping[str, Any] | None) -> None:
        try:
            self.sample(stats)
            if self.monitor is not None:
                self.record(self.monitor.result())
        except Exception:  # a sample lost must not stop the watcher's abort checks
            log.debug("sampling the nodes failed", exc_info=True)

    def sample(self, stats: Mapping[str, Any] | None) -> None:
        states = self.monitor.states if self.monitor is not None else {}
        venue = None if stats is None else stats.get("nodes", {})
        self.run.journal.sample_nodes(
            {
                n: node_sample(
                    states.get(n), None if venue is None else venue.get(n, {}), self.flags
                )
                for n in self.run.lab.settings.node_names
            }
        )

    def record(self, seen: MonitorResult, via: str = "") -> None:
        """Put what one path of the monitor saw into the timeline, each alert and kill once
        (`via`: "" for the built-in scraper, else "prometheus": each line then says so)."""
        start = self.run.journal.start.timestamp()
        prefix = f"via {via}: " if via else ""
        for entry in seen.timeline():
            d = entry["detail"]
            key = (via, entry["kind"], entry["node"], entry["t"], d.get("rule"))
            if key in self._recorded:
                continue
            self._recorded.add(key)
            if entry["kind"] == "alert":
                detail = (
                    f"{prefix}{d['rule']} {d['severity']} owner={d['owner']} "
                    f"action={d['action']} runbook={d['runbook']}: {d['summary']}"
                )
            else:
                detail = (
                    f"{prefix}kill switch on every node (trigger {', '.join(d['trigger'])}, "
                    f"ok={d['ok']})"
                )
            self.run.journal.event(entry["kind"], entry["node"], detail, t=entry["t"] - start)
