"""Each node fills a burst of parent orders, every one of them, faster than the floor."""

from __future__ import annotations

import time

import probes
from testinfra.host import Host
from trading import trading_problem

BURST_ORDERS = 300
QTY = 100  # one child order each (the router slices by 100)


def test_node_fills_every_order_of_a_burst_above_the_throughput_floor(
    host: Host, name: str, version: dict, min_orders_per_s: float
):
    problem = trading_problem(name, version)
    assert problem is None, problem
    prefix = probes.order_prefix(name, time.time())
    result = probes.decode(host.run(probes.burst(BURST_ORDERS, QTY, prefix)))
    assert result["acked"] == BURST_ORDERS, result
    assert result["filled"] == BURST_ORDERS, result
    assert result["overfilled"] == 0, result
    assert result["orders_per_s"] >= min_orders_per_s, (
        f"{name} filled {BURST_ORDERS} parent orders at {result['orders_per_s']}/s "
        f"(floor {min_orders_per_s:g}/s)"
    )
