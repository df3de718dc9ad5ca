"""Done/total and the time left, at the pace of the items done so far."""

from __future__ import annotations

import io

from rich.console import Console

from toolkit.experiments.journal import Journal
from toolkit.view.progress import Countdown, duration, time_left
from toolkit.view.run import RunsView


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def text(view: object) -> str:
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(view)
    return console.export_text()


def test_time_left_is_the_items_to_come_at_the_pace_of_those_done():
    assert time_left(0, 24, 30.0) is None
    assert time_left(6, 24, 120.0) == 360.0
    assert time_left(24, 24, 480.0) == 0.0


def test_durations_read_in_seconds_minutes_and_hours():
    assert [duration(s) for s in (0, 42.4, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def test_a_countdown_says_done_of_total_elapsed_and_left():
    clock = Clock()
    countdown = Countdown("fault campaign, seed 2012", 100, "schedules", clock=clock)
    assert text(countdown).strip() == (
        "fault campaign, seed 2012: 0/100 schedules · 0s · estimating the time left"
    )
    clock.now = 50.0
    countdown.done = 10
    assert text(countdown).strip() == (
        "fault campaign, seed 2012: 10/100 schedules · 50s · about 7m30s left"
    )
    countdown.done = 100
    assert text(countdown).strip().endswith("100/100 schedules · 50s · done")


def test_the_matrix_counts_runs_whose_journal_is_finished():
    clock = Clock()
    view = RunsView(Countdown("matrix", 24, "runs", clock=clock), ["smars-1"])
    first = Journal("skipped_node", "unsafe", clock=clock)
    view.observe(first)
    clock.now = 20.0
    assert "matrix: 0/24 runs · 20s · estimating" in text(view)
    first.finish("deviated", True)
    view.observe(Journal("skipped_node", "guarded", clock=clock))
    clock.now = 30.0
    shown = text(view)
    assert "matrix: 1/24 runs · 30s · about 11m30s left" in shown
    assert "skipped_node · guarded · guards all" in shown
