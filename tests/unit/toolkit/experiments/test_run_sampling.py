"""What a run records as it goes, for its journal and the live view that reads it: a `step` event
as each step begins, every node as the monitor last saw it with its venue counts, and the
monitor's alerts and kills as they come, each once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from toolkit.experiments import run as run_module
from toolkit.experiments.activities import StepOutcome
from toolkit.experiments.journal import Journal, NodeSample
from toolkit.experiments.model import Activity, Experiment
from toolkit.experiments.sampler import Sampler, flag_names
from toolkit.experiments.state import RunState
from toolkit.guards.sets import GuardSet
from toolkit.monitor import Alert, FlagState, KillRecord, MonitorResult, NodeState

NODES = ["smars-1", "smars-2", "smars-3"]


def _run(method: tuple[Activity, ...] = (), rollbacks: tuple[Activity, ...] = ()) -> RunState:
    exp = Experiment(
        id="t",
        path=Path("t.yml"),
        title="t",
        description="",
        parameters={},
        fleet=tuple(NODES),
        steady_state=(),
        method=method,
        rollbacks=rollbacks,
    )
    lab = SimpleNamespace(settings=SimpleNamespace(node_names=NODES))
    return RunState(lab, exp, GuardSet(), Journal("t", "unsafe"), lambda _m: None)  # type: ignore[arg-type]


def test_each_step_is_recorded_as_it_begins_then_as_it_ends(monkeypatch):
    seen: list[list[str]] = []

    def act(run: Any, _args: Any) -> StepOutcome:
        seen.append([e.kind for e in run.journal.timeline])
        return StepOutcome("done", "ok")

    monkeypatch.setitem(run_module.ACTIVITY_ACTS, "wait", act)
    monkeypatch.setitem(run_module.ACTIVITY_ACTS, "kill", act)
    method = (
        Activity("wait", {"seconds": 1}, "trading"),
        Activity("wait", {"seconds": 1, "node": "smars-2"}, "more trading"),
    )
    run = _run(method, rollbacks=(Activity("kill", {}, "kill switch"),))
    assert run_module._method(run) == "completed"
    run_module._rollbacks(run)
    timeline = [(e.kind, e.node, e.detail) for e in run.journal.timeline]
    assert timeline == [
        ("step", None, "1/2 trading"),
        ("wait", None, "trading: ok"),
        ("step", "smars-2", "2/2 more trading"),
        ("wait", "smars-2", "more trading: ok"),
        ("step", None, "rollback 1/1 kill switch"),
        ("rollback_kill", None, "kill switch: done ok"),
    ]
    assert seen[0] == ["step"]  # the step under way is in the journal while it runs


def test_the_flags_sampled_are_those_the_steps_set():
    method = (
        Activity("flag", {"name": "flag_7", "value": True}, "on"),
        Activity("wait", {"seconds": 1}, "w"),
    )
    rollbacks = (Activity("flag", {"name": "rlp_enable", "value": False}, "off"),)
    rollbacks += (Activity("flag", {"name": "flag_7", "value": False}, "off"),)
    assert flag_names(_run(method, rollbacks).experiment) == ["flag_7", "rlp_enable"]


class _Monitor:
    """The monitor as the sampler reads it: the last round's node states, what it saw so far."""

    def __init__(self, start: float) -> None:
        flag = {"flag_7": FlagState(True, "rlp", "power_peg"), "other": FlagState(False, "x", "x")}
        self.states = {
            "smars-1": NodeState("smars-1", True, "8.0.0", True, {}, 25.04, 50.0),
            "smars-3": NodeState("smars-3", True, "7.1.0", False, flag, 25.0, 2310.46),
        }
        self.seen = MonitorResult(0.2, start, None, rounds=10)
        self.start = start

    def alert(self, after_s: float, rule: str, node: str) -> None:
        t = self.start + after_s
        self.seen.alerts.append(
            Alert(t, t, rule, node, "critical", "trading-risk", "runbooks/x.md", "kill", "s", 1.0)
        )

    def result(self) -> MonitorResult:
        return self.seen


def test_a_sample_holds_every_node_with_its_venue_counts_and_the_experiments_flags():
    run = _run((Activity("flag", {"name": "flag_7", "value": True}, "on"),))
    monitor = _Monitor(run.journal.start.timestamp())
    sampler = Sampler(run, monitor)  # type: ignore[arg-type]
    sampler({"nodes": {"smars-3": {"excess_shares": 41200}}})
    sampler(None)  # the venue did not answer
    (_, first), (_, second) = run.journal.series.samples
    assert first == {
        "smars-1": NodeSample("8.0.0", True, {}, 25.0, 50.0, 0),
        "smars-2": NodeSample(excess_shares=0),  # not scraped yet: the venue's count only
        "smars-3": NodeSample(
            "7.1.0",
            False,
            {"flag_7": {"on": True, "meaning": "rlp", "code_meaning": "power_peg"}},
            25.0,
            2310.5,
            41200,
        ),
    }
    assert second["smars-3"].excess_shares is None and second["smars-3"].release == "7.1.0"


def test_alerts_and_kills_go_into_the_timeline_as_they_come_each_once():
    run = _run()
    monitor = _Monitor(run.journal.start.timestamp())
    sampler = Sampler(run, monitor)  # type: ignore[arg-type]
    monitor.alert(2.0, "overfill", "smars-3")
    monitor.alert(2.0, "order_rate_anomaly", "smars-3")  # the same round, another rule
    sampler({"nodes": {}})
    sampler({"nodes": {}})
    kill_t = monitor.start + 2.5
    monitor.seen.kills.append(
        KillRecord(kill_t, kill_t + 0.1, ["overfill@smars-3"], {"smars-1": {"ok": True}})
    )
    sampler.record(monitor.seen)  # what the monitor saw in the end
    timeline = [(e.t, e.kind, e.node, e.detail.split(" ")[0]) for e in run.journal.timeline]
    assert timeline == [
        (2.0, "alert", "smars-3", "overfill"),
        (2.0, "alert", "smars-3", "order_rate_anomaly"),
        (2.5, "kill", None, "kill"),
    ]
