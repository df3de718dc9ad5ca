"""An experiment run names the paths of the monitor that watch it; with both, the outcome's
times are the earlier of the two, and each path's alerts and kills stay its own."""

from __future__ import annotations

import pytest

from toolkit.errors import ConfigError
from toolkit.experiments.run import _Observers, run_experiment
from toolkit.monitor import Alert, KillRecord, MonitorResult


def alert(raised: float, rule: str = "overfill") -> Alert:
    return Alert(raised, raised, rule, "smars-8", "critical", "trading-risk",
                 f"docs/runbooks/{rule}.md", "kill", "runaway", 1.0)  # fmt: skip


def result(first: float, kill_done: float) -> MonitorResult:
    kill = KillRecord(t=kill_done - 0.1, done=kill_done, trigger=["overfill@smars-8"])
    return MonitorResult(0.2, 100.0, 200.0, 5, alerts=[alert(first)], kills=[kill])


@pytest.mark.parametrize("monitors", [("prometheus", "nagios"), ()])
def test_an_unknown_or_no_monitor_path_is_refused_before_the_lab_is_touched(monitors):
    with pytest.raises(ConfigError, match="use builtin, prometheus"):
        run_experiment(object(), object(), "unsafe", monitors=monitors)  # type: ignore[arg-type]


def test_with_both_paths_the_run_sees_the_earlier_alert_and_kill():
    observers = _Observers(monitors=("builtin", "prometheus"))
    observers.results = {"builtin": result(101.2, 101.5), "prometheus": result(102.4, 103.1)}
    seen = observers.seen
    assert seen is not None
    assert seen.first_alert("kill").raised == 101.2
    assert [k.done for k in seen.kills] == [101.5, 103.1]
    assert seen.rounds == 10


def test_nothing_seen_before_any_path_stopped():
    assert _Observers().seen is None
