"""Each node as the monitor's last round saw it (what a run samples into its journal): release,
kill switch, flags with their declared and code meanings, and parent and child orders per second
over the last second, from the router's own /metrics text."""

from __future__ import annotations

import pytest
from monitor_fixtures import metrics_text

from toolkit.monitor import FlagState, Monitor, NodeState

FLAG_7_ON_AS_RLP = {"flag_7": {"value": True, "meaning": "rlp", "code_meaning": "power_peg"}}


class Node:
    """A 7.1.0 router whose counters the test moves between rounds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.acked = 0
        self.rejected = 0
        self.children = 0
        self.trading = True
        self.down = False

    def metrics(self) -> str:
        if self.down:
            raise ConnectionError("refused")
        return metrics_text(
            node=self.name,
            acked=self.acked,
            rejects={"risk": self.rejected} if self.rejected else {},
            children={"sor": 0, "power_peg": self.children},
            trading_active=self.trading,
            flags=FLAG_7_ON_AS_RLP,
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_states_give_release_flags_kill_switch_and_rates_over_the_last_second():
    nodes = [Node("smars-1"), Node("smars-2")]
    clock = Clock()
    monitor = Monitor(nodes, rules=[], interval_s=0.2, scrape_timeout_s=5, clock=clock)
    assert monitor.states == {
        "smars-1": NodeState("smars-1", up=False),
        "smars-2": NodeState("smars-2", up=False),
    }
    for _ in range(5):  # one second of rounds: smars-1 runs away, smars-2 trades quietly
        clock.now += 0.2
        nodes[0].acked += 5
        nodes[0].children += 400
        nodes[1].acked += 4
        nodes[1].rejected += 1
        nodes[1].children += 10
        monitor.poll()
    nodes[0].trading = False
    clock.now += 0.2
    monitor.poll()
    runaway, quiet = monitor.states["smars-1"], monitor.states["smars-2"]
    assert runaway.up and runaway.release == "7.1.0" and runaway.trading is False
    assert runaway.flags == {"flag_7": FlagState(True, "rlp", "power_peg")}
    # The last round moved nothing: the rate is over the second before it, five rounds of six.
    assert runaway.child_orders_per_s == pytest.approx(1600.0)
    assert runaway.parent_orders_per_s == pytest.approx(20.0)
    assert quiet.trading is True
    assert (quiet.parent_orders_per_s, quiet.child_orders_per_s) == pytest.approx((20.0, 40.0))
    monitor.stop()


def test_a_node_that_stops_answering_is_not_up_and_keeps_its_last_scrape():
    node = Node("smars-1")
    clock = Clock()
    monitor = Monitor([node], rules=[], interval_s=0.2, scrape_timeout_s=5, clock=clock)
    monitor.poll()
    assert monitor.states["smars-1"].child_orders_per_s is None  # one scrape: no rate yet
    node.down = True
    clock.now += 0.2
    monitor.poll()
    state = monitor.states["smars-1"]
    assert state.up is False and state.release == "7.1.0"
    monitor.stop()
