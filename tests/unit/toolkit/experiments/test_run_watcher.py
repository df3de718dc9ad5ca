"""The abort watcher: an experiment's duration counts from the lab's reset on, so a machine that
is slow to reset the lab does not abort a run whose method has hardly begun."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from toolkit.experiments.model import AbortCondition
from toolkit.experiments.run import SAMPLE_S, _Watcher


class _Venue:
    """Counts the samples: the third one is the watcher's third look at the run."""

    def __init__(self) -> None:
        self.samples = 0
        self.sampled = threading.Event()

    def get(self, path: str) -> dict:
        assert path == "/stats"
        self.samples += 1
        if self.samples >= 3:
            self.sampled.set()
        return {"excess_shares": 0, "child_orders": 0}


class _Run:
    """What the watcher reads of a run: the venue, the abort conditions, the journal's clock
    (here 100 s in: a reset that took that long) and where it records a trip."""

    def __init__(self, limit: float) -> None:
        self.venue = _Venue()
        self.lab = SimpleNamespace(venue_admin=lambda: self.venue)
        self.experiment = SimpleNamespace(abort=[AbortCondition("duration_over_s", limit)])
        self.journal = SimpleNamespace(elapsed=lambda: 100.0)
        self.stop = threading.Event()
        self.events: list[tuple[str, str]] = []

    def event(self, kind: str, node: str | None, detail: str) -> None:
        self.events.append((kind, detail))


def _watch(run: _Run, seconds: list[float]) -> _Watcher:
    """A watcher whose clock reads `seconds` one after the other (the last one from then on),
    stopped once it has sampled the venue three times (or tripped)."""
    ticks = iter(seconds)
    last = [seconds[-1]]

    def clock() -> float:
        last[0] = next(ticks, last[0])
        return last[0]

    watcher = _Watcher(run, clock=clock)  # type: ignore[arg-type]
    watcher.start()
    assert run.venue.sampled.wait(SAMPLE_S * 20)
    watcher.stop()
    return watcher


def test_the_time_before_the_watcher_started_is_not_counted():
    run = _Run(limit=60)
    watcher = _watch(run, [1000.0, 1005.0])  # 5 s since it started, 100 s since the run began
    assert watcher.tripped is None and run.events == []
    assert not run.stop.is_set()


def test_a_method_that_outlasts_the_limit_is_aborted():
    run = _Run(limit=60)
    watcher = _watch(run, [1000.0, 1061.0])
    assert watcher.tripped == "duration_over_s 60"
    assert run.events == [("abort", "duration_over_s 60: 61 observed")]
    assert run.stop.is_set()
