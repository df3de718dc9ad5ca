"""Power Peg, the legacy strategy as the 2005 refactor left it: the cumulative-quantity check
moved out of it, so it sends a child for each of its parents on every peg tick without asking
how much already executed, and goes on after the parent is filled. Only a cancel (the kill
switch) stops it. Its total output is bounded per node so the lab machine is not saturated."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from . import Context, Strategy

if TYPE_CHECKING:
    from ..book import Parent

__all__ = ["PowerPeg"]

_DUST = 1e-9  # float error of summed tick intervals must not cost a child


class PowerPeg(Strategy):
    NAME = "power_peg"
    SETTLES = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._ring: deque[Parent] = deque()  # round-robin order; cancelled parents drop out
        self._timer: Any = None
        self._tokens = 0.0
        self._last_tick = 0.0

    def on_parent(self, parent: Parent) -> None:
        self._ring.append(parent)
        if self._timer is None:
            self._last_tick = self.ctx.time()
            self._arm()

    def on_child_rejected(self, parent: Parent, reason: str) -> None:
        pass  # it never looked at the venue's answers

    def is_finished(self, parent: Parent) -> bool:
        return False  # the tracker is never consulted, so it never knows it is done

    def tick(self) -> None:
        """Send this tick's share of the per-second budget, round-robin over the parents."""
        self._timer = None
        now = self.ctx.time()
        rate = self.ctx.peg_max_children_per_s
        # Up to two ticks' worth may be spent at once, so a late tick catches up.
        burst = max(1.0, 2 * rate * self.ctx.peg_interval_s)
        self._tokens = min(burst, self._tokens + (now - self._last_tick) * rate)
        self._last_tick = now
        ring = self._ring
        while self._tokens >= 1.0 - _DUST and ring:
            parent = ring.popleft()
            if parent.done:
                continue
            ring.append(parent)
            if not self.ctx.send_child(parent, min(self.ctx.slice_qty, parent.qty)):
                break  # the egress refuses (kill switch, no venue): try again next tick
            self._tokens -= 1.0
        if ring:
            self._arm()  # cancelled parents leave the ring as the rotation reaches them

    def _arm(self) -> None:
        self._timer = self.ctx.call_later(self.ctx.peg_interval_s, self.tick)
