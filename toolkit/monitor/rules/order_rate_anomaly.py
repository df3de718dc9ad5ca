"""A node sending child orders far faster than the rest of the fleet, or faster than any
node should: the runaway seen from the outside, whatever strategy causes it.

Child orders per second (all strategies, over `window_s`) fire on a node above `ceiling`, or
above `floor` and `factor` times the fleet median (the floor keeps a quiet fleet, where the
median is near zero, from alerting on ordinary flow). Critical: the fleet is killed."""

from __future__ import annotations

import statistics

from toolkit.monitor.fleet import Fleet
from toolkit.monitor.rule import Finding, Rule

__all__ = ["OrderRateAnomaly"]


class OrderRateAnomaly(Rule):
    name = "order_rate_anomaly"
    owner = "trading-risk"
    severity = "critical"
    action = "kill"

    def __init__(
        self,
        window_s: float = 1.0,
        ceiling: float = 2000.0,
        floor: float = 250.0,
        factor: float = 5.0,
    ) -> None:
        self.window_s = window_s
        self.ceiling = ceiling
        self.floor = floor
        self.factor = factor

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        rates: dict[str, float] = {}
        for node in fleet.up():
            rate = node.rate(lambda s: s.sum("smars_child_orders_total"), self.window_s)
            if rate is not None:
                rates[node.name] = rate
        if not rates:
            return []
        median = statistics.median(rates.values())
        found = []
        for name, rate in sorted(rates.items()):
            if rate > self.ceiling:
                why = f"above the ceiling of {self.ceiling:g}/s"
            elif rate > self.floor and rate > self.factor * median:
                why = (
                    f"{rate / median:.0f}x the fleet median of {median:.0f}/s"
                    if median
                    else "while the fleet median is 0/s"
                )
            else:
                continue
            found.append(Finding(name, f"{name}: {rate:.0f} child orders/s, {why}", rate))
        return found
