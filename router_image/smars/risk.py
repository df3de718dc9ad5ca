"""The risk gate (guard 4, in the manner of SEC Rule 15c3-5): the checks every child order
passes at the egress, below every strategy, so no strategy can bypass them.

A child is refused, in this order of precedence, when
- `killed`:   the kill switch is on (always enforced, whatever the guard switch says);
- `overfill`: it would take its parent's committed shares above the parent's quantity;
- `notional`: it would take the node's open exposure above `max_notional`;
- `rate`:     the node's child-order bucket (`max_child_per_s`) is empty.

The gate keeps its own books and never asks a strategy's tracker (Power Peg never does, and
that is the 2012 failure). A parent's *committed* shares are the shares of every child sent for
it minus those the venue refused: executed shares stay committed, and so do shares whose fate is
unknown (a lost venue connection), because the venue may have executed them. The node's *open
exposure* is the notional of the committed shares of its working parents, each child priced at
the last execution price of its symbol (else `reference_price`); a parent's exposure leaves the
total when the parent finishes or is cancelled.

With the risk guard off the gate enforces only the kill switch, but keeps its books and counts
what it would have refused, so the 2012 run shows what the gate would have stopped and the guard
can be switched on mid-run with correct books."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .state import KILLED

if TYPE_CHECKING:
    from .book import Parent
    from .log import Log
    from .state import State

__all__ = ["CANCEL_REASONS", "LIMIT_REASONS", "REASONS", "Limits", "RiskGate"]

#: Why the gate refuses a child, in order of precedence.
REASONS = ("killed", "overfill", "notional", "rate")
#: The reasons the guard switch turns on and off (the kill switch is never off).
LIMIT_REASONS = ("overfill", "notional", "rate")
#: The reason a client is given when its parent is cancelled after such a refusal.
CANCEL_REASONS = {reason: f"risk_{reason}" for reason in LIMIT_REASONS} | {"killed": "killed"}

#: The rate bucket holds this many seconds of `max_child_per_s`: a burst (one read of many
#: orders) passes, a sustained excess does not.
BURST_S = 0.1


@dataclass(frozen=True)
class Limits:
    """The node's limits (router.json `risk_*`; see docs/protocol.md for the sizing)."""

    max_child_per_s: int = 500_000
    max_notional: float = 250_000_000.0
    reference_price: float = 100.0

    @property
    def child_burst(self) -> float:
        return max(1.0, self.max_child_per_s * BURST_S)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "child_burst": self.child_burst}


class RiskGate:
    """The checks and books of one node. `enabled` reads the risk guard switch; it is asked
    only when a check fails, so an admitted child never pays for it."""

    __slots__ = (
        "_burst",
        "_clock",
        "_enabled",
        "_last",
        "_log",
        "_max_notional",
        "_rate",
        "_reference",
        "_state",
        "_tokens",
        "exposure",
        "limits",
        "prices",
        "refused",
        "would_refuse",
    )

    def __init__(
        self,
        limits: Limits,
        *,
        state: State,
        enabled: Callable[[], bool],
        log: Log | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._state = state
        self._enabled = enabled
        self._log = log
        self._clock = clock
        self._max_notional = float(limits.max_notional)
        self._reference = float(limits.reference_price)
        self._rate = float(limits.max_child_per_s)
        self._burst = limits.child_burst
        self._tokens = self._burst
        self._last = clock()
        #: symbol -> last execution price (the egress writes it on every execution)
        self.prices: dict[str, float] = {}
        self.exposure = 0.0  # open exposure of the working parents, dollars
        self.refused = dict.fromkeys(REASONS, 0)
        self.would_refuse = dict.fromkeys(LIMIT_REASONS, 0)

    @property
    def enabled(self) -> bool:
        return self._enabled()

    def admit(self, parent: Parent, qty: int) -> str | None:
        """Book the child and return None when it may leave; else the reason it may not."""
        if self._state.trading == KILLED:  # State.killed, without a property call per child
            return self._refuse("killed", parent, qty)
        # The same few operations whether the guard is on or off: off, the gate only counts.
        committed = parent.committed + qty
        notional = qty * self.prices.get(parent.symbol, self._reference)
        exposure = self.exposure + notional
        if committed <= parent.qty and exposure <= self._max_notional:
            tokens = self._tokens
            if tokens >= 1.0 or (tokens := self._refill()) >= 1.0:
                self._tokens = tokens - 1.0
                parent.committed = committed
                parent.exposure += notional
                self.exposure = exposure
                return None
            reason = "rate"
        else:
            reason = "overfill" if committed > parent.qty else "notional"
        if self._enabled():
            return self._refuse(reason, parent, qty)
        self.would_refuse[reason] += 1
        parent.committed = committed
        parent.exposure += notional
        self.exposure = exposure
        return None

    def _refill(self) -> float:
        """The bucket is empty: credit the time since the last refill (so the clock is read
        once per bucketful, not once per child). Over any interval this admits at most
        `max_child_per_s` per second plus a burst or two."""
        now = self._clock()
        tokens = self._tokens + (now - self._last) * self._rate
        self._last = now
        self._tokens = tokens = tokens if tokens < self._burst else self._burst
        return tokens

    def release(self, parent: Parent, qty: int) -> None:
        """The venue refused `qty` shares of a child of `parent`: they are no longer committed."""
        committed = parent.committed
        if committed <= 0:
            return
        # Released at the parent's average price, so its exposure returns exactly to 0.
        share = parent.exposure * (qty / committed) if qty < committed else parent.exposure
        parent.committed = committed - qty if qty < committed else 0
        parent.exposure -= share
        self.exposure -= share

    def close(self, parent: Parent) -> None:
        """The parent finished or was cancelled: its exposure is no longer open. Its shares stay
        committed (a late reject still releases them, and no child may leave for it anyway)."""
        self.exposure -= parent.exposure
        parent.exposure = 0.0
        if self.exposure < 1e-6:
            self.exposure = 0.0  # float dust of many adds and subtracts

    def snapshot(self) -> dict[str, Any]:
        """What /version shows."""
        return {
            "enabled": self.enabled,
            "limits": self.limits.to_json(),
            "exposure": round(self.exposure, 2),
            "refused": dict(self.refused),
            "would_refuse": dict(self.would_refuse),
        }

    def _refuse(self, reason: str, parent: Parent, qty: int) -> str:
        self.refused[reason] += 1
        if self._log is not None:
            self._log.throttled(
                "warning",
                f"risk_refused_{reason}",
                reason=reason,
                parent=parent.id,
                strategy=parent.strategy.NAME,
                symbol=parent.symbol,
                qty=qty,
                parent_qty=parent.qty,
                committed=parent.committed,
                exposure=round(self.exposure, 2),
                refused=self.refused[reason],
            )
        return reason
