"""The core's cumulative-quantity tracker of one parent order: what was executed, what is out
at the venue, what may still be sent. Strategies that ask it never overfill; Power Peg never
asks."""

from __future__ import annotations

__all__ = ["Tracker"]


class Tracker:
    """Quantities of one parent: `qty` ordered, `cum` executed, `outstanding` sent and not yet
    answered by the venue."""

    __slots__ = ("cum", "outstanding", "qty")

    def __init__(self, qty: int) -> None:
        self.qty = qty
        self.cum = 0
        self.outstanding = 0

    def remaining(self) -> int:
        """Shares that may still be sent without risking an overfill."""
        left = self.qty - self.cum - self.outstanding
        return left if left > 0 else 0

    @property
    def leaves(self) -> int:
        """Shares not executed yet, as the client sees them (never negative)."""
        left = self.qty - self.cum
        return left if left > 0 else 0

    @property
    def overfill(self) -> int:
        """Shares executed beyond the parent's quantity."""
        over = self.cum - self.qty
        return over if over > 0 else 0

    @property
    def settled(self) -> bool:
        """Filled and nothing left at the venue: the parent is finished."""
        return self.cum >= self.qty and self.outstanding == 0

    def sent(self, qty: int) -> None:
        self.outstanding += qty

    def executed(self, qty: int) -> int:
        """Book an execution; returns the shares of it that are overfill."""
        ordered = self.qty
        before = self.cum - ordered  # the overfill before and after, when positive
        self.cum = cum = self.cum + qty
        out = self.outstanding - qty
        self.outstanding = out if out > 0 else 0
        after = cum - ordered
        return (after if after > 0 else 0) - (before if before > 0 else 0)

    def unanswered(self, qty: int) -> None:
        """A child will not execute (rejected, or its connection was lost)."""
        out = self.outstanding - qty
        self.outstanding = out if out > 0 else 0
