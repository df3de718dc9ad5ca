"""The monitor's rules: each fires on its failure, names the right nodes, and stays quiet on a
healthy fleet. The nodes' /metrics text is rendered by the router's own exposition code."""

from __future__ import annotations

import pytest
from smars.metrics import Snapshot, render

from toolkit.errors import LabError
from toolkit.monitor import Monitor, default_rules
from toolkit.monitor.rules.error_burst import ErrorBurst
from toolkit.monitor.rules.flag_meaning_drift import FlagMeaningDrift
from toolkit.monitor.rules.node_down import NodeDown
from toolkit.monitor.rules.order_rate_anomaly import OrderRateAnomaly
from toolkit.monitor.rules.overfill import Overfill
from toolkit.monitor.rules.version_drift import VersionDrift

NODES = [f"smars-{i}" for i in range(1, 9)]
STRATEGIES = {"7.1.0": ("sor", "power_peg"), "8.0.0": ("sor", "rlp")}
CODE_MEANING = {"7.1.0": "power_peg", "8.0.0": "rlp"}


class FakeNode:
    """A router's admin API as the monitor reads it; the state is a router Snapshot's fields."""

    def __init__(self, name: str, release: str = "8.0.0", flag_on: bool = False) -> None:
        self.name = name
        self.down = False
        self.state: dict = dict(
            node=name,
            acked=0,
            rejects={"killed": 0},
            executions=0,
            shares=0,
            overfill_shares=0,
            working=0,
            trading_active=True,
            intake_open=True,
            venue_connected=True,
            flag_errors=0,
            errors={},
        )
        self.run(release, flag_on=flag_on, meaning="rlp")

    def run(self, release: str, flag_on: bool, meaning: str) -> None:
        """Run `release` (fresh counters, as after a re-exec) with flag_7 declared `meaning`."""
        self.state.update(
            release=release,
            tree={"7.1.0": "aaa111", "8.0.0": "bbb222"}[release],
            children=dict.fromkeys(STRATEGIES[release], 0),
            flags={
                "flag_7": {
                    "value": flag_on,
                    "meaning": meaning,
                    "code_meaning": CODE_MEANING[release],
                }
            },
        )

    def send(self, strategy: str, n: int) -> None:
        self.state["children"][strategy] = self.state["children"].get(strategy, 0) + n

    def error(self, kind: str, n: int = 1) -> None:
        self.state["errors"][kind] = self.state["errors"].get(kind, 0) + n

    def metrics(self) -> str:
        if self.down:
            raise LabError(f"{self.name}: metrics at http://127.0.0.1:1 did not answer: refused")
        return render(Snapshot(**self.state))


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Lab:
    """Eight fake nodes, a fake clock and a monitor over them, stepped 200 ms at a time."""

    def __init__(self, rules, release: str = "8.0.0", flag_on: bool = False) -> None:
        self.nodes = {n: FakeNode(n, release, flag_on) for n in NODES}
        self.clock = Clock()
        # The fake nodes answer at once; a scrape's real-time bound (one interval by default)
        # is no subject here, and a loaded machine's thread pool can overrun it.
        self.monitor = Monitor(
            list(self.nodes.values()), rules, clock=self.clock, scrape_timeout_s=60
        )
        self.alerts: list = []

    def __getitem__(self, name: str) -> FakeNode:
        return self.nodes[name]

    def step(self, dt: float = 0.2, flow: int = 5) -> list:
        """Time passes; every node sends `flow` ordinary sor children; one monitor round."""
        self.clock.t += dt
        for node in self.nodes.values():
            node.send("sor", flow)
        raised = self.monitor.poll()
        self.alerts += raised
        return raised

    def run(self, seconds: float, dt: float = 0.2, flow: int = 5) -> list:
        raised = []
        for _ in range(round(seconds / dt)):
            raised += self.step(dt, flow)
        return raised


def nodes_of(alerts) -> list[str]:
    return sorted(a.node for a in alerts)


def test_a_healthy_fleet_raises_nothing_under_every_rule():
    lab = Lab(default_rules(), release="8.0.0", flag_on=True)
    assert lab.run(15.0) == []
    assert lab.monitor.rounds == 75
    assert lab.monitor.errors == []


# -- version_drift ---------------------------------------------------------------------------


def test_version_drift_names_the_skipped_node_after_its_hold():
    lab = Lab([VersionDrift()])
    lab["smars-3"].run("7.1.0", flag_on=False, meaning="power_peg")
    first_seen = lab.clock.t + 0.2
    assert lab.run(9.8) == []
    raised = lab.run(0.4)
    assert nodes_of(raised) == ["smars-3"]
    alert = raised[0]
    assert alert.t == pytest.approx(first_seen)
    assert alert.raised - alert.t == pytest.approx(10.0)
    assert (alert.severity, alert.action, alert.owner) == ("warning", "page", "release-engineering")
    assert "smars-3 runs 7.1.0" in alert.summary and "8.0.0 (bbb222) on 7" in alert.summary


def test_version_drift_during_a_flip_shorter_than_the_hold_is_not_an_alert():
    lab = Lab([VersionDrift()], release="7.1.0")
    for name in NODES[:4]:
        lab[name].run("8.0.0", flag_on=False, meaning="rlp")
    lab.run(2.0)
    for name in NODES[4:]:
        lab[name].run("8.0.0", flag_on=False, meaning="rlp")
    assert lab.run(20.0) == []


def test_version_drift_on_a_tie_names_every_node():
    lab = Lab([VersionDrift()])
    for name in NODES[4:]:
        lab[name].run("7.1.0", flag_on=False, meaning="power_peg")
    assert nodes_of(lab.run(10.4)) == NODES


# -- flag_meaning_drift ----------------------------------------------------------------------


def test_flag_meaning_drift_2012_the_reused_flag_on_a_skipped_node():
    lab = Lab([FlagMeaningDrift()], release="8.0.0", flag_on=True)
    lab["smars-3"].run("7.1.0", flag_on=True, meaning="rlp")
    raised = lab.step()
    # Every node where the flag is on is part of the disagreement; smars-3 is also wrong alone.
    assert nodes_of(raised) == NODES
    by_node = {a.node: a for a in raised}
    assert "flag_7 is on, declared 'rlp', this code runs 'power_peg'" in by_node["smars-3"].summary
    others = ", ".join(n for n in NODES if n != "smars-3")
    assert f"flag_7 is on and means power_peg on smars-3 vs rlp on {others}" in (
        by_node["smars-1"].summary
    )
    assert {a.severity for a in raised} == {"critical"}
    assert {a.action for a in raised} == {"kill"}


def test_flag_meaning_drift_after_the_2012_rollback_every_node_is_wrong():
    lab = Lab([FlagMeaningDrift()], release="7.1.0")
    for node in lab.nodes.values():
        node.run("7.1.0", flag_on=True, meaning="rlp")
    raised = lab.step()
    assert nodes_of(raised) == NODES
    assert all("declared 'rlp', this code runs 'power_peg'" in a.summary for a in raised)


def test_flag_meaning_drift_ignores_flags_that_are_off_or_not_read_by_the_code():
    lab = Lab([FlagMeaningDrift()], release="7.1.0")
    for node in lab.nodes.values():
        node.run("7.1.0", flag_on=False, meaning="rlp")  # declared wrong, but off
    lab["smars-2"].state["flags"]["retired_flag"] = {
        "value": True,
        "meaning": "rlp",
        "code_meaning": None,  # this code does not read it: it cannot wake anything
    }
    assert lab.run(2.0) == []


# -- overfill --------------------------------------------------------------------------------


def test_overfill_fires_on_the_first_power_peg_child_of_a_node():
    lab = Lab([Overfill()], release="7.1.0")
    lab.run(1.0)
    lab["smars-3"].send("power_peg", 1)
    raised = lab.step()
    assert nodes_of(raised) == ["smars-3"]
    assert raised[0].value == 1
    assert "1 child orders from power_peg, which never checks executions" in raised[0].summary
    assert (raised[0].severity, raised[0].action, raised[0].owner) == (
        "critical",
        "kill",
        "trading-risk",
    )


def test_overfill_fires_on_shares_executed_beyond_their_parents():
    lab = Lab([Overfill()])
    lab.run(1.0)
    lab["smars-5"].state["overfill_shares"] += 300
    raised = lab.step()
    assert nodes_of(raised) == ["smars-5"]
    assert raised[0].value == 300
    assert "300 shares executed beyond their parents' quantity" in raised[0].summary


def test_overfill_ignores_counts_from_before_the_monitor_and_counter_resets():
    lab = Lab([Overfill()], release="7.1.0")
    lab["smars-1"].state["children"]["power_peg"] = 50_000  # an earlier run's
    lab["smars-1"].state["overfill_shares"] = 9_000
    assert lab.run(2.0) == []
    lab["smars-1"].run("7.1.0", flag_on=False, meaning="power_peg")  # re-exec: counters at 0
    lab["smars-1"].state["overfill_shares"] = 0
    assert lab.run(2.0) == []


def test_overfill_clears_when_the_counters_stop_and_fires_again_when_they_restart():
    lab = Lab([Overfill(window_s=5.0)], release="7.1.0")
    lab.step()
    for _ in range(10):
        lab["smars-3"].send("power_peg", 100)
        lab.step()
    assert nodes_of(lab.alerts) == ["smars-3"]  # once, not once per round
    lab.run(6.0)  # killed: nothing moves for longer than the window
    lab["smars-3"].send("power_peg", 100)
    assert nodes_of(lab.step()) == ["smars-3"]
    assert len(lab.alerts) == 2


# -- order_rate_anomaly ----------------------------------------------------------------------


def test_order_rate_anomaly_names_the_node_far_above_the_fleet_median():
    lab = Lab([OrderRateAnomaly()])
    lab.run(1.0)
    rounds = []
    for _ in range(5):
        lab["smars-3"].send("sor", 100)  # 500/s beside the others' 25/s
        rounds.append(lab.step())
    raised = [a for r in rounds for a in r]
    assert nodes_of(raised) == ["smars-3"]
    # The 1 s rate passes the 250/s floor once half the window is runaway: the third round.
    assert [len(r) for r in rounds] == [0, 0, 1, 0, 0]
    assert raised[0].value == pytest.approx(3 * 105 + 2 * 5)
    assert raised[0].summary == "smars-3: 325 child orders/s, 13x the fleet median of 25/s"


def test_order_rate_anomaly_ceiling_catches_a_fleet_that_runs_away_together():
    lab = Lab([OrderRateAnomaly()])
    raised = lab.run(2.0, flow=500)  # 2500/s on every node: the median is no help
    assert nodes_of(raised) == NODES
    assert "above the ceiling of 2000/s" in raised[0].summary


def test_order_rate_anomaly_a_lone_node_below_the_floor_is_ordinary_flow():
    lab = Lab([OrderRateAnomaly()])
    for _ in range(10):
        lab["smars-1"].send("sor", 40)  # 200/s while the others are quiet
        lab.step(flow=0)
    assert lab.alerts == []


# -- error_burst -----------------------------------------------------------------------------


def test_error_burst_the_pre_open_flag_meaning_errors_page_the_oncall():
    lab = Lab([ErrorBurst(threshold=3, window_s=60.0)])
    lab.run(1.0)
    raised = []
    for _ in range(3):
        lab["smars-3"].error("flag_meaning")  # a new series at 1, then rising
        raised += lab.run(5.0)
    assert nodes_of(raised) == ["smars-3"]
    alert = raised[0]
    assert (alert.severity, alert.action, alert.owner) == ("warning", "page", "smars-oncall")
    assert alert.value == 3
    assert "(totals: flag_meaning: 3)" in alert.summary


def test_error_burst_counts_unusable_flag_files_too():
    lab = Lab([ErrorBurst(threshold=3)])
    lab.step()
    lab["smars-2"].state["flag_errors"] += 3
    assert nodes_of(lab.step()) == ["smars-2"]


def test_error_burst_errors_spread_wider_than_the_window_are_not_a_burst():
    lab = Lab([ErrorBurst(threshold=3, window_s=60.0)])
    lab.step()
    for _ in range(4):
        lab["smars-3"].error("venue_reject")
        lab.run(40.0, dt=1.0)
    assert lab.alerts == []


# -- node_down -------------------------------------------------------------------------------


def test_node_down_after_a_second_of_failed_scrapes_and_the_others_still_watched():
    lab = Lab([NodeDown(), Overfill()], release="7.1.0")
    lab.step()
    lab["smars-4"].down = True
    assert lab.run(0.8) == []
    raised = lab.run(0.4)
    assert nodes_of(raised) == ["smars-4"]
    assert "did not answer" in raised[0].summary
    assert (raised[0].severity, raised[0].action) == ("warning", "page")
    lab["smars-6"].send("power_peg", 10)  # the blind spot on smars-4 does not hide smars-6
    assert [(a.rule, a.node) for a in lab.step()] == [("overfill", "smars-6")]
    assert all(n.up for n in lab.monitor.fleet if n.name != "smars-4")
