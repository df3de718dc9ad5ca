"""Child orders beyond what their parents asked for, caught at the earliest reliable sign.

Fires on a node when, within the last `window_s`,
- `smars_overfill_shares_total` rose (shares executed beyond their parent's quantity), or
- a strategy that never consults the cumulative-quantity tracker sent a child order
  (`smars_child_orders_total{strategy="power_peg"}` rose).
The second comes first: Power Peg's first child is sent the moment its parent arrives, while
the first overfilled share needs the parent filled and one more child executed. Every child it
sends is unbounded by fills, so one is enough. Critical: the fleet is killed."""

from __future__ import annotations

from toolkit.monitor.fleet import Fleet, Sample
from toolkit.monitor.rule import Finding, Rule

__all__ = ["Overfill"]


class Overfill(Rule):
    name = "overfill"
    owner = "trading-risk"
    severity = "critical"
    action = "kill"

    def __init__(
        self, window_s: float = 5.0, untracked_strategies: tuple[str, ...] = ("power_peg",)
    ) -> None:
        self.window_s = window_s
        self.untracked = untracked_strategies

    def _untracked_children(self, sample: Sample) -> float:
        return sum(sample.sum("smars_child_orders_total", strategy=s) for s in self.untracked)

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        found = []
        for node in fleet.up():
            shares, _ = node.increase(lambda s: s.sum("smars_overfill_shares_total"), self.window_s)
            children, _ = node.increase(self._untracked_children, self.window_s)
            if shares > 0:
                found.append(
                    Finding(
                        node.name,
                        f"{node.name}: {shares:.0f} shares executed beyond their parents' "
                        f"quantity in {self.window_s:g} s",
                        shares,
                    )
                )
            elif children > 0:
                found.append(
                    Finding(
                        node.name,
                        f"{node.name}: {children:.0f} child orders from "
                        f"{'/'.join(self.untracked)}, which never checks executions, "
                        f"in {self.window_s:g} s",
                        children,
                    )
                )
        return found
