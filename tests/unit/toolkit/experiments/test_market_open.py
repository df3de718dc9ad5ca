"""A load in the background (the open of the market) returns once its parent orders flow: on a
loaded machine the load generator's process may take seconds to start, and a `wait` or a `close`
after the open must count from trading, not from a process that has not begun (a close sent
before the load generator is ready would kill it before it sends: no trading, one lost load)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from toolkit.errors import LabError
from toolkit.experiments.activities import load as load_module
from toolkit.experiments.context import Context
from toolkit.guards.sets import GuardSet
from toolkit.lab.load import LoadResult

ACCOUNT = dict.fromkeys(
    ("sent", "acked", "filled", "overfilled", "cancelled", "rejected", "working", "unanswered"), 0
)


@pytest.fixture
def ctx(monkeypatch) -> Context:
    notes: dict[str, Any] = {}
    monkeypatch.setattr(load_module, "read_notes", lambda _settings: dict(notes))
    monkeypatch.setattr(
        load_module, "update_notes", lambda _settings, **changes: notes.update(changes)
    )
    return Context(SimpleNamespace(settings=None), GuardSet())  # type: ignore[arg-type]


def _slow_load(started: threading.Event, release: threading.Event):
    """A load generator that starts sending only once `release` is set, then runs until the
    test ends it."""

    def run_load(_lab, _spec, on_progress=None) -> LoadResult:
        release.wait(10)
        started.set()
        on_progress({"progress": {"t": 1.0, "sent": 200}})
        release.wait(10)
        return LoadResult.from_json(ACCOUNT)

    return run_load


@pytest.mark.parametrize("args", [{"duration_s": None}, {"duration_s": 5.0, "background": True}])
def test_a_load_in_the_background_returns_only_once_parent_orders_flow(ctx, monkeypatch, args):
    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(load_module, "run_load", _slow_load(started, release))
    threading.Timer(0.5, release.set).start()  # the process takes its time to start
    out = load_module.send(ctx, {"rate": 200.0, "rlp_share": 0.25, "qty": 100, **args}, "open")
    assert started.is_set(), "the open returned before its load generator sent anything"
    assert out["status"] == "done" and "ended before sending" not in out["detail"]


def test_an_open_whose_load_generator_fails_to_start_returns_and_says_so(ctx, monkeypatch):
    def run_load(_lab, _spec, on_progress=None) -> LoadResult:
        raise LabError("loadgen in the client container exited 143")

    monkeypatch.setattr(load_module, "run_load", run_load)
    out = load_module.send(
        ctx, {"rate": 200.0, "rlp_share": 0.25, "qty": 100, "duration_s": None}, "open"
    )
    assert (
        out["detail"]
        == "200 parent orders/s until the market closes (its load generator ended before sending)"
    )
