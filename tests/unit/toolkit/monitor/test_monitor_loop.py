"""The monitor loop: its interval, one alert per rule and node until it clears, a slow or broken
node or rule never blinds it to the rest, and a runaway is seen and killed within budget."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from monitor_fixtures import metrics_text

from toolkit.errors import ConfigError, LabError
from toolkit.monitor import (
    MAX_INTERVAL_S,
    Finding,
    KillSwitch,
    Monitor,
    Record,
    Rule,
    default_rules,
)

ROOT = Path(__file__).resolve().parents[4]
NODES = [f"smars-{i}" for i in range(1, 9)]


class Node:
    """A 7.1.0 router's admin API: /metrics from the router's renderer, POST /kill stops it.

    `runaway_from` (epoch s): from then on Power Peg sends 500 children/s until killed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runaway_from: float | None = None
        self.killed_at: float | None = None
        self.scrapes = 0
        self.lock = threading.Lock()

    def power_peg_children(self, now: float) -> int:
        if self.runaway_from is None or now < self.runaway_from:
            return 0
        end = self.killed_at if self.killed_at is not None else now
        return int(500 * max(0.0, end - self.runaway_from)) + 1

    def metrics(self) -> str:
        with self.lock:
            self.scrapes += 1
        return metrics_text(
            node=self.name,
            children={"sor": 0, "power_peg": self.power_peg_children(time.time())},
            trading_active=self.killed_at is None,
        )

    def post(self, path: str, body=None):
        assert path == "/kill"
        self.killed_at = self.killed_at or time.time()
        return {"trading": "killed", "cancelled": 0}


class Hanging(Node):
    """A paused container: the TCP connection is accepted, the answer never comes."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def metrics(self) -> str:
        with self.lock:
            self.scrapes += 1
        self.release.wait(10)
        raise LabError(f"{self.name}: metrics did not answer: timed out")


class Garbled(Node):
    def metrics(self) -> str:
        return "<html>502 Bad Gateway</html>"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Switch(Rule):
    """A rule whose condition the test turns on and off for named nodes."""

    name = "switch"
    owner = "test"
    severity = "info"
    action = "none"

    def __init__(self) -> None:
        self.on: set[str] = set()

    def evaluate(self, fleet):
        return [Finding(n, f"{n} is on", 1.0) for n in sorted(self.on)]


class Broken(Rule):
    name = "broken"
    owner = "test"
    severity = "info"
    action = "none"

    def evaluate(self, fleet):
        raise KeyError("smars_info")


def test_the_interval_is_at_most_250_ms_and_the_loop_keeps_it():
    nodes = [Node(n) for n in NODES]
    monitor = Monitor(nodes, interval_s=0.2)
    assert monitor.interval_s == 0.2 <= MAX_INTERVAL_S == 0.25
    monitor.start()
    time.sleep(1.0)
    result = monitor.stop()
    assert 4 <= result.rounds <= 7
    assert all(n.scrapes >= 4 for n in nodes)
    assert result.alerts == [] and result.errors == []


@pytest.mark.parametrize("interval", [0.0, 0.3, 1.0])
def test_an_interval_outside_0_to_250_ms_is_refused(interval):
    with pytest.raises(ConfigError, match=r"at most 0\.25 s"):
        Monitor([Node("smars-1")], interval_s=interval)


# A monitor polled by hand on a fake clock gets a generous real-time scrape bound: its fake
# nodes answer at once, and a loaded machine's thread pool can overrun the default (one interval).


def test_an_alert_fires_once_per_rule_and_node_until_it_clears():
    rule, clock = Switch(), Clock()
    monitor = Monitor([Node("smars-1"), Node("smars-2")], [rule], clock=clock, scrape_timeout_s=60)
    rule.on = {"smars-1"}
    rounds = []
    for _ in range(5):
        clock.t += 0.2
        rounds.append([a.node for a in monitor.poll()])
    rule.on = {"smars-1", "smars-2"}
    clock.t += 0.2
    rounds.append([a.node for a in monitor.poll()])
    rule.on = set()  # cleared
    clock.t += 0.2
    rounds.append([a.node for a in monitor.poll()])
    rule.on = {"smars-1"}  # back: a new alert
    clock.t += 0.2
    rounds.append([a.node for a in monitor.poll()])
    assert rounds == [["smars-1"], [], [], [], [], ["smars-2"], [], ["smars-1"]]
    assert [a.t - 1_000_000 for a in monitor.alerts] == pytest.approx([0.2, 1.2, 1.6])


def test_every_rule_declares_owner_severity_action_and_an_existing_runbook():
    rules = default_rules()
    assert [r.name for r in rules] == [
        "error_burst",
        "flag_meaning_drift",
        "node_down",
        "order_rate_anomaly",
        "overfill",
        "version_drift",
    ]
    for rule in rules:
        assert rule.owner
        assert rule.severity in ("critical", "warning", "info")
        assert rule.action == ("kill" if rule.severity == "critical" else "page")
        assert rule.runbook == f"docs/runbooks/{rule.name}.md"
        assert (ROOT / rule.runbook).read_text().startswith(f"# {rule.name} — {rule.severity}")
    critical = {r.name for r in rules if r.severity == "critical"}
    assert critical == {"flag_meaning_drift", "order_rate_anomaly", "overfill"}


def test_a_rule_that_says_critical_must_kill():
    with pytest.raises(TypeError, match="critical rules kill"):

        class Careless(Rule):
            name = "careless"
            owner = "nobody"
            severity = "critical"
            action = "page"


def test_a_broken_rule_is_reported_and_does_not_blind_the_others():
    rule, clock = Switch(), Clock()
    monitor = Monitor([Node("smars-1")], [Broken(), rule], clock=clock, scrape_timeout_s=60)
    rule.on = {"smars-1"}
    raised = monitor.poll()
    assert [(a.rule, a.node) for a in raised] == [("switch", "smars-1")]
    assert monitor.errors == ["rule broken: KeyError: 'smars_info'"]


def test_a_hanging_node_does_not_hold_up_the_others():
    nodes = [Node("smars-1"), Hanging("smars-2"), Node("smars-3")]
    monitor = Monitor(nodes, interval_s=0.2)
    try:
        started = time.monotonic()
        monitor.poll()
        took = time.monotonic() - started
        monitor.poll()
        view = monitor.fleet.nodes
        assert took < 5  # not held up by the one that hangs (10 s)
        assert view["smars-1"].up and view["smars-3"].up
        assert len(view["smars-1"].samples) == len(view["smars-3"].samples) == 2
        assert not view["smars-2"].up
        assert view["smars-2"].error == "the previous scrape has not answered yet"
        assert view["smars-2"].failures == 2
        assert nodes[1].scrapes == 1  # no pile-up of scrapes behind the hung one
    finally:
        nodes[1].release.set()
        monitor.stop()


def test_an_answer_that_is_not_prometheus_text_is_a_failed_scrape():
    monitor = Monitor([Node("smars-1"), Garbled("smars-2")], clock=Clock(), scrape_timeout_s=60)
    monitor.poll()
    view = monitor.fleet.nodes
    assert view["smars-1"].up
    assert not view["smars-2"].up
    assert view["smars-2"].error.startswith("/metrics is not Prometheus text")


def test_a_runaway_is_detected_within_half_a_second_and_the_fleet_killed_within_one(tmp_path):
    nodes = {n: Node(n) for n in NODES}
    record = Record(tmp_path / "alerts.jsonl")
    kill_switch = KillSwitch(list(nodes.values()), record)
    monitor = Monitor(list(nodes.values()), actions=[record, kill_switch]).start()
    try:
        time.sleep(0.5)  # a history of a healthy fleet
        runaway = time.time()
        nodes["smars-3"].runaway_from = runaway
        deadline = time.monotonic() + 3.0
        while not monitor.kills and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        result = monitor.stop()
    first = result.first_alert("kill")
    assert first is not None and (first.rule, first.node) == ("overfill", "smars-3")
    assert first.raised - runaway <= 0.5  # detect_s
    kill = result.kills[0]
    assert kill.trigger == ["overfill@smars-3"]
    assert sorted(kill.nodes) == NODES and kill.ok
    last_child = max(n.killed_at for n in nodes.values())
    assert last_child - first.raised <= 1.0  # kill_s
    assert [line["kind"] for line in record.read()][:2] == ["alert", "kill"]
