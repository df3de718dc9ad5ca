"""Retail Liquidity Program routing (2012): one child of `slice_qty` at a time, the next only
once the previous one executed, always within what the tracker says remains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Strategy

if TYPE_CHECKING:
    from ..book import Parent

__all__ = ["Rlp"]


class Rlp(Strategy):
    NAME = "rlp"

    def on_parent(self, parent: Parent) -> None:
        self._next_child(parent)

    def on_execution(self, parent: Parent, qty: int) -> None:
        self._next_child(parent)

    def _next_child(self, parent: Parent) -> None:
        tracker = parent.tracker
        left = tracker.remaining()
        if left == 0 or tracker.outstanding:
            return
        if not self.ctx.send_child(parent, min(self.ctx.slice_qty, left)):
            self.ctx.cancel_parent(parent, "refused")
