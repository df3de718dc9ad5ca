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
        size = self.ctx.slice_qty
        while (left := tracker.remaining()) > 0:
            if not self.ctx.send_child(parent, min(size, left)):
                if tracker.outstanding == 0:
                    # Nothing out and nothing may leave: the parent would wait forever.
                    self.ctx.cancel_parent(parent, "refused")
                return
