"""The end of a run: whatever happened, and whatever happens meanwhile (a step that raises, a
Ctrl-C, a second Ctrl-C), the market closes, every rollback runs, every fault is undone and the
watchers stop."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from interrupt import ctrl_c_raises

from toolkit.experiments import run as run_module
from toolkit.experiments.activities import StepOutcome
from toolkit.experiments.journal import Journal
from toolkit.experiments.model import Activity, Experiment
from toolkit.experiments.state import RunState
from toolkit.guards.sets import GuardSet


def _run(rollbacks: list[str]) -> RunState:
    exp = Experiment(
        id="t",
        path=Path("t.yml"),
        title="t",
        description="",
        parameters={},
        fleet=("smars-1",),
        steady_state=(),
        method=(),
        rollbacks=tuple(Activity(name, {}, name) for name in rollbacks),
    )
    return RunState(None, exp, GuardSet(), Journal("t", "unsafe"), lambda _m: None)  # type: ignore[arg-type]


class _Fault:
    NAME = "pause"

    def __init__(self, node: str, calls: list[str], raises: BaseException | None = None):
        self.node, self.calls, self.raises = node, calls, raises

    def undo(self) -> None:
        self.calls.append(f"undo {self.node}")
        if self.raises is not None:
            raise self.raises


class _Observers:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def stop(self) -> None:
        self.calls.append("watchers stopped")


def _acts(monkeypatch, calls: list[str], **raising: BaseException) -> None:
    for name in ("kill", "flag", "day"):

        def act(_run: Any, _args: Any, name: str = name) -> StepOutcome:
            calls.append(name)
            if name in raising:
                raise raising[name]
            return StepOutcome("done")

        monkeypatch.setitem(run_module.ACTIVITY_ACTS, name, act)


def _timeline(run: RunState) -> list[tuple[str, str]]:
    return [(e.kind, e.detail) for e in run.journal.timeline]


def test_a_rollback_that_raises_any_error_does_not_skip_the_rest_of_the_clean_up(monkeypatch):
    calls: list[str] = []
    _acts(monkeypatch, calls, kill=RuntimeError("engine gone"))
    run = _run(["kill", "flag"])
    run.faults = [_Fault("smars-1", calls), _Fault("smars-2", calls)]
    interrupted = run_module._wind_down(run, _Observers(calls))  # type: ignore[arg-type]
    assert interrupted is False
    assert calls == ["kill", "flag", "undo smars-1", "undo smars-2", "watchers stopped"]
    assert ("rollback_kill", "kill: failed RuntimeError: engine gone") in _timeline(run)


def test_a_ctrl_c_in_a_rollback_is_noted_and_every_other_part_still_runs(monkeypatch):
    calls: list[str] = []
    _acts(monkeypatch, calls, kill=KeyboardInterrupt())
    run = _run(["kill", "flag"])
    run.faults = [_Fault("smars-1", calls, KeyboardInterrupt()), _Fault("smars-2", calls)]
    interrupted = run_module._wind_down(run, _Observers(calls))  # type: ignore[arg-type]
    assert interrupted is True
    assert calls == ["kill", "flag", "undo smars-1", "undo smars-2", "watchers stopped"]
    kinds = [kind for kind, _ in _timeline(run)]
    assert kinds.count("interrupted") == 1  # the fault's undo; the rollback says it itself
    assert ("rollback_kill", "kill: failed interrupted; going on with the rollbacks") in _timeline(
        run
    )


def test_a_sigint_during_the_clean_up_does_not_cut_a_rollback_short(monkeypatch):
    """A real SIGINT in the middle of a rollback step: the step goes on to its end."""
    calls: list[str] = []

    def kill(_run: Any, _args: Any) -> StepOutcome:
        os.kill(os.getpid(), signal.SIGINT)  # handled before the next bytecode
        calls.append("kill went on to its end")
        return StepOutcome("done")

    _acts(monkeypatch, calls)
    monkeypatch.setitem(run_module.ACTIVITY_ACTS, "kill", kill)
    run = _run(["kill", "flag"])
    with ctrl_c_raises():
        interrupted = run_module._wind_down(run, _Observers(calls))  # type: ignore[arg-type]
        assert interrupted is True
        assert calls == ["kill went on to its end", "flag", "watchers stopped"]
        assert ("interrupted", "Ctrl-C during the rollbacks: it went on to its end") in (
            _timeline(run)
        )
        # Outside the clean-up, Ctrl-C raises again.
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises at once; this is never reached


def test_the_clean_up_closes_an_open_market_first(monkeypatch):
    calls: list[str] = []
    _acts(monkeypatch, calls)
    monkeypatch.setattr(run_module, "close_market", lambda _run: calls.append("close") or True)
    run = _run(["kill"])
    run_module._wind_down(run, _Observers(calls))  # type: ignore[arg-type]
    assert calls == ["close", "kill", "watchers stopped"]
    assert ("close", "the market closes: the method is over") in _timeline(run)
