"""Smart order routing, the normal path: slice the parent into children of `slice_qty`, all at
once, never more in total than the tracker says remains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Strategy

if TYPE_CHECKING:
    from ..book import Parent

__all__ = ["Sor"]


class Sor(Strategy):
    NAME = "sor"

    def on_parent(self, parent: Parent) -> None:
        self._top_up(parent)

    def on_execution(self, parent: Parent, qty: int) -> None:
        # A short execution leaves shares neither executed nor out: send them again.
        if parent.tracker.outstanding == 0:
            self._top_up(parent)

    def _top_up(self, parent: Parent) -> None:
        tracker = parent.tracker
        ctx = self.ctx
        size = ctx.slice_qty
        # tracker.remaining(), inlined: this runs for every parent and every short execution.
        while (left := tracker.qty - tracker.cum - tracker.outstanding) > 0:
            if not ctx.send_child(parent, size if size < left else left):
                if tracker.outstanding == 0:
                    # Nothing out and nothing may leave: the parent would wait forever.
                    ctx.cancel_parent(parent, "refused")
                return
