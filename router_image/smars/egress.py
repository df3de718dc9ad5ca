"""The one path by which a child order leaves for the venue: every strategy's children go
through `Egress.send`, below all strategy code. It passes each child through the risk gate
(which holds the kill switch), numbers the children, and keeps those still in flight."""

from __future__ import annotations

from collections import Counter
from time import monotonic
from typing import TYPE_CHECKING

from . import wire
from .risk import CANCEL_REASONS, Limits, RiskGate

if TYPE_CHECKING:
    from .book import Parent
    from .state import State

__all__ = ["Egress"]


class Egress:
    def __init__(self, state: State, gate: RiskGate | None = None) -> None:
        self._state = state
        # Without a gate of its own the egress still has one: the kill switch, limits off.
        self.gate = gate or RiskGate(Limits(), state=state, enabled=lambda: False)
        self._admit = self.gate.admit
        self._prices = self.gate.prices
        #: `closed(parent)`: the parent finished or was cancelled, its exposure is no longer
        #: open (the gate's own method, one call per parent).
        self.closed = self.gate.close
        self._venue: wire.Outbox | None = None
        self._next_id = 0
        # child id -> [parent, shares not yet answered]; ids are unique per process, hence
        # per connection.
        self.in_flight: dict[int, list] = {}
        #: When `in_flight` last went from empty to not empty (time.monotonic): with what the
        #: venue link last heard, how long the venue has left children unanswered.
        self.busy_since = 0.0
        self.children_sent: Counter[str] = Counter()  # per strategy
        self.refused = 0
        #: Why the last child was refused, as a parent's cancel reason (see Book.cancel_parent).
        self.refusal: str | None = None

    @property
    def connected(self) -> bool:
        return self._venue is not None

    def attach(self, venue: wire.Outbox) -> None:
        """A venue connection is up (its hello already queued)."""
        self._venue = venue

    def detach(self) -> list[tuple[Parent, int]]:
        """The venue connection is gone: every child in flight will never be answered. Their
        shares stay committed in the risk gate: the venue may have executed them."""
        self._venue = None
        lost = [(entry[0], entry[1]) for entry in self.in_flight.values()]
        self.in_flight.clear()
        return lost

    def send(self, parent: Parent, qty: int) -> bool:
        venue = self._venue
        if venue is None or parent.done or self._state.fenced:
            self.refused += 1
            self.refusal = "venue_down" if venue is None else None if parent.done else "fenced"
            return False
        refused = self._admit(parent, qty)
        if refused is not None:
            self.refused += 1
            self.refusal = CANCEL_REASONS[refused]
            return False
        self._next_id += 1
        child_id = self._next_id
        strategy = parent.strategy.NAME
        in_flight = self.in_flight
        if not in_flight:
            self.busy_since = monotonic()
        in_flight[child_id] = [parent, qty]
        parent.tracker.sent(qty)
        venue.add(
            wire.child(child_id, parent.id, parent.qty, parent.symbol, parent.side, qty, strategy)
        )
        self.children_sent[strategy] += 1
        return True

    def executed(self, child_id: int, qty: int, price: float) -> Parent | None:
        """The parent of an executed child (None for an unknown child). An execution of more
        shares than the child has open is refused (wire.VenueMessageError) before anything is
        booked: neither the books nor the reference price take it."""
        entry = self.in_flight.get(child_id)
        if entry is None:
            return None
        left = entry[1]
        if qty > left:
            raise wire.VenueMessageError(
                f"qty: {qty} is more than the {left} shares child {child_id} has open"
            )
        parent = entry[0]
        self._prices[parent.symbol] = price  # the risk gate's reference for the next children
        if qty == left:
            del self.in_flight[child_id]
        else:
            entry[1] = left - qty
        return parent

    def rejected(self, child_id: int) -> tuple[Parent, int] | None:
        """The parent of a refused child and the shares that will not execute (released in
        the risk gate)."""
        entry = self.in_flight.pop(child_id, None)
        if entry is None:
            return None
        parent, qty = entry
        self.gate.release(parent, qty)
        return parent, qty
