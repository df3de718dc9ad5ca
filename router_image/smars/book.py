"""The router core: the working parent orders, the strategy each one runs, and what happens
on an execution, a venue refusal, a lost venue or a cancel. It is the strategies' Context."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from . import wire
from .egress import Egress
from .strategies import Strategy
from .tracker import Tracker

__all__ = ["Book", "BookCounts", "Parent"]


class Parent:
    """A working parent order: what the client asked, who runs it, where its reports go."""

    __slots__ = (
        "client",
        "committed",
        "done",
        "exposure",
        "id",
        "qty",
        "side",
        "strategy",
        "symbol",
        "tracker",
    )

    def __init__(
        self,
        order_id: str,
        symbol: str,
        side: str,
        qty: int,
        strategy: Strategy,
        client: wire.Outbox | None = None,
    ) -> None:
        self.id = order_id
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.strategy = strategy
        self.client = client
        self.tracker = Tracker(qty)
        self.done = False  # finished or cancelled: no child may leave for it any more
        # The risk gate's own books of the parent, never the strategy's tracker: shares sent
        # and not refused by the venue, and their notional while the parent works.
        self.committed = 0
        self.exposure = 0.0


class BookCounts:
    """Execution counters of the node (exposed as metrics)."""

    __slots__ = ("errors", "executions", "overfill_shares", "shares")

    def __init__(self) -> None:
        self.executions = 0
        self.shares = 0
        self.overfill_shares = 0
        self.errors: Counter[str] = Counter()


class Book:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        egress: Egress,
        strategies: dict[str, type[Strategy]],
        slice_qty: int,
        peg_interval_s: float,
        peg_max_children_per_s: int,
    ) -> None:
        self._loop = loop
        self._egress = egress
        self.slice_qty = slice_qty
        self.peg_interval_s = peg_interval_s
        self.peg_max_children_per_s = peg_max_children_per_s
        self.working: dict[str, Parent] = {}
        #: Working parents per client connection (its outbox), for the per-connection cap.
        self.working_by_client: dict[Any, int] = {}
        self.counts = BookCounts()
        self.strategies = {name: cls(self) for name, cls in strategies.items()}

    # The strategies' Context.

    def send_child(self, parent: Parent, qty: int) -> bool:
        return self._egress.send(parent, qty)

    def cancel_parent(self, parent: Parent, reason: str) -> None:
        if reason == "refused":
            # The strategy only knows the egress said no; the client is told why.
            reason = self._egress.refusal or reason
        self.cancel(parent, reason)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self._loop.call_later(delay, callback)

    def time(self) -> float:
        return self._loop.time()

    # Parents.

    def open(self, order: wire.Order, strategy: Strategy, client: wire.Outbox | None) -> Parent:
        """Make `order` a working parent of `strategy` (the caller checked the id is free)."""
        parent = Parent(order.id, order.symbol, order.side, order.qty, strategy, client)
        self.working[parent.id] = parent
        if client is not None:
            by_client = self.working_by_client
            by_client[client] = by_client.get(client, 0) + 1
        strategy.on_parent(parent)
        return parent

    def cancel(self, parent: Parent, reason: str) -> None:
        if parent.done:
            return
        self._close(parent)
        if parent.client is not None:
            parent.client.add(wire.cancelled(parent.id, parent.tracker.cum, reason))

    def cancel_all(self, reason: str, parents: Iterable[Parent] | None = None) -> int:
        """Cancel `parents` (every working one by default); returns how many."""
        victims = list(self.working.values() if parents is None else parents)
        for parent in victims:
            self.cancel(parent, reason)
        return len(victims)

    def settling(self) -> list[Parent]:
        """Working parents expected to finish on their own (not Power Peg's)."""
        return [p for p in self.working.values() if p.strategy.SETTLES]

    def _close(self, parent: Parent) -> None:
        parent.done = True
        if self.working.get(parent.id) is parent:
            del self.working[parent.id]
        client = parent.client
        if client is not None:
            by_client = self.working_by_client
            left = by_client[client] - 1
            if left:
                by_client[client] = left
            else:
                del by_client[client]
        self._egress.closed(parent)

    # What the venue says.

    def on_execution(self, child_id: int, qty: int, price: float) -> None:
        parent = self._egress.executed(child_id, qty, price)
        counts = self.counts
        if parent is None:
            counts.errors["unknown_child"] += 1
            return
        tracker = parent.tracker
        counts.executions += 1
        counts.shares += qty
        counts.overfill_shares += tracker.executed(qty)
        if parent.done:
            return  # cancelled before this came back: the client already has its answer
        client = parent.client
        if client is not None:
            cum = tracker.cum
            leaves = tracker.qty - cum  # tracker.leaves, inlined
            client.add(wire.fill(parent.id, qty, price, cum, leaves if leaves > 0 else 0))
        strategy = parent.strategy
        strategy.on_execution(parent, qty)
        if not parent.done and strategy.is_finished(parent):
            self._close(parent)  # the fill that brought leaves to 0 told the client

    def on_child_rejected(self, child_id: int, reason: str) -> None:
        refused = self._egress.rejected(child_id)
        if refused is None:
            self.counts.errors["unknown_child"] += 1
            return
        parent, qty = refused
        parent.tracker.unanswered(qty)
        self.counts.errors["venue_reject"] += 1
        if not parent.done:
            parent.strategy.on_child_rejected(parent, reason)

    def on_venue_lost(self, lost: list[tuple[Parent, int]]) -> int:
        """Book the children that will never be answered and cancel the parents that cannot
        finish without the venue; Power Peg's stay (they only stop on a cancel)."""
        for parent, qty in lost:
            parent.tracker.unanswered(qty)
        return self.cancel_all("venue_lost", self.settling())
