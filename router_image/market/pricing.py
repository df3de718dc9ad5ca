"""The venue's book-keeping, free of I/O: a price model per symbol, positions, cash and P&L per node
and per symbol, excess shares per parent order, the execution log, the per-run message cap and the
child-order series. Every method takes the time it should use, so tests drive the clock."""

from __future__ import annotations

import math
import time
import uuid
import zlib
from collections.abc import Callable
from math import floor

__all__ = [
    "BAND",
    "BUCKET_S",
    "DECAY_S",
    "DEFAULT_CAP",
    "EXECUTION_FIELDS",
    "HALF_SPREAD_CENTS",
    "IMPACT_PER_SHARE",
    "Book",
    "NodeBook",
    "SymbolBook",
    "fair_cents",
]

HALF_SPREAD_CENTS = 1
"""Ask = mid + 1 cent, bid = mid - 1 cent when no flow has moved them."""

IMPACT_PER_SHARE = 2e-6
"""How far one share of aggressive flow moves its side of the quote, as a fraction of fair value:
100 shares move a $50 stock by one cent, so ordinary flow barely moves it and a runaway walks it."""

DECAY_S = 2.0
"""Time constant (seconds) of the quote's return to fair value once flow stops."""

BAND = 0.10
"""The largest displacement from fair value, as a fraction of it (a limit-up/limit-down band):
the price of a runaway stays finite and its loss per share is bounded by it."""

DEFAULT_CAP = 500_000
"""Child-order messages per run after which the venue refuses everything until reset."""

BUCKET_S = 0.25
"""Width of one bucket of the child-order series."""

EXECUTION_FIELDS = (
    "seq",
    "t",
    "node",
    "release",
    "parent",
    "child",
    "symbol",
    "side",
    "qty",
    "price",
    "strategy",
)

_BUY = "buy"
_SELL = "sell"


def fair_cents(symbol: str) -> int:
    """A symbol's fair value in cents, $10.00 to $100.00, the same for the same symbol on every run."""
    return 1000 + zlib.crc32(symbol.encode()) % 9001


def _dollars(cents: float) -> float:
    return round(cents / 100, 2)


class SymbolBook:
    """One symbol: its quote and the venue's counterparty view of the flow in it.

    Buys lift the offer and sells hit the bid: each side has its own displacement from fair value,
    pushed by aggressive flow on that side, decaying exponentially back to zero. So a buy always pays
    at least fair value plus the half spread, a sell receives at most fair value minus it, and P&L
    marked at fair value loses on every trade.
    """

    __slots__ = (
        "ask_d",
        "band",
        "bid_d",
        "cash",
        "fair",
        "impact",
        "name",
        "position",
        "shares",
        "t",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.fair = fair_cents(name)
        self.impact = self.fair * IMPACT_PER_SHARE  # cents per share
        self.band = self.fair * BAND  # cents
        self.ask_d = 0.0
        self.bid_d = 0.0
        self.t = now
        self.shares = 0
        self.position = 0  # shares bought minus shares sold by the routers
        self.cash = 0  # cents: what the routers received minus what they paid

    def decay(self, now: float) -> None:
        dt = now - self.t
        if dt > 0:
            if self.ask_d or self.bid_d:
                f = math.exp(-dt / DECAY_S)
                self.ask_d *= f
                self.bid_d *= f
            self.t = now

    def ask(self) -> int:
        return self.fair + HALF_SPREAD_CENTS + int(self.ask_d + 0.5)

    def bid(self) -> int:
        return max(1, self.fair - HALF_SPREAD_CENTS - int(self.bid_d + 0.5))

    def mid(self) -> float:
        """Mid price in cents."""
        return (self.ask() + self.bid()) / 2

    def pnl(self) -> int:
        """The routers' P&L in this symbol, in cents, marked at fair value."""
        return self.cash + self.position * self.fair


class NodeBook:
    """One node's counts for the run."""

    __slots__ = (
        "cash",
        "child_orders",
        "connected",
        "excess_shares",
        "executions",
        "first_excess_at",
        "invalid",
        "name",
        "overfilled_parents",
        "parent_ids",
        "parent_shares",
        "parents",
        "positions",
        "rejected",
        "releases",
        "series",
        "shares",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.connected = 0  # open connections that said hello with this node name
        self.child_orders = 0  # valid child orders received, filled or refused by the cap
        self.executions = 0
        self.shares = 0
        self.excess_shares = 0
        #: When this node's first execution beyond its parent's quantity happened (epoch s).
        self.first_excess_at: float | None = None
        self.overfilled_parents = 0
        self.rejected = 0
        self.invalid = 0
        self.cash = 0  # cents
        self.positions: dict[str, int] = {}
        self.releases: dict[str, int] = {}  # release -> executions
        self.series: dict[int, int] = {}  # bucket index -> child orders
        # Parents by index: parent id -> index, and per index the id and the shares executed.
        # parent_ids keeps one shared copy of each id, so the execution log does not hold a fresh
        # string per execution; and no object per parent means nothing for the garbage collector.
        self.parents: dict[str, int] = {}
        self.parent_ids: list[str] = []
        self.parent_shares: list[int] = []

    def position(self) -> int:
        return sum(self.positions.values())

    def pnl(self, symbols: dict[str, SymbolBook]) -> int:
        """P&L in cents, marked at fair value."""
        return self.cash + sum(q * symbols[s].fair for s, q in self.positions.items())


class Book:
    """All of one run: what the venue reports on /stats, /executions, /series and /metrics."""

    def __init__(
        self,
        cap: int = DEFAULT_CAP,
        clock: Callable[[], float] = time.time,
        keep: int = 1_000_000,
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.clock = clock
        # The execution log is bounded by the cap anyway; keep bounds it if the cap is set huge.
        self.keep = keep
        self.cap = cap
        self._connected: dict[str, int] = {}
        self.reset(cap)

    # -- runs --------------------------------------------------------------------------------

    def reset(self, cap: int | None = None, now: float | None = None) -> str:
        """Start a new run: clear every count, execution and series, re-arm the cap."""
        if cap is not None:
            if cap < 1:
                raise ValueError("cap must be at least 1")
            self.cap = cap
        self.run = uuid.uuid4().hex[:12]
        self.started_at = self.clock() if now is None else now
        self.messages = 0  # child-order messages, valid or not, filled or refused
        self.capped = False
        self.capped_at: float | None = None
        self.rejects: dict[str, int] = {}
        self.executions = 0
        self.shares = 0
        self.excess_shares = 0
        self.overfilled_parents = 0
        self.symbols: dict[str, SymbolBook] = {}
        self.nodes: dict[str, NodeBook] = {}
        # Connections outlive a run: a node still connected stays listed, with zero counts.
        for name, count in self._connected.items():
            self._node(name).connected = count
        self._log: list[tuple] = []
        self._log_base = 1  # seq of _log[0]
        self._seq = 0
        return self.run

    def _node(self, name: str) -> NodeBook:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = NodeBook(name)
        return node

    def connect(self, node: str) -> None:
        self._connected[node] = self._connected.get(node, 0) + 1
        self._node(node).connected += 1

    def disconnect(self, node: str) -> None:
        left = self._connected.get(node, 0) - 1
        if left > 0:
            self._connected[node] = left
        else:
            self._connected.pop(node, None)
        self._node(node).connected = max(left, 0)

    # -- orders ------------------------------------------------------------------------------

    def symbol(self, name: str, now: float) -> SymbolBook:
        sym = self.symbols.get(name)
        if sym is None:
            sym = self.symbols[name] = SymbolBook(name, now)
        else:
            sym.decay(now)
        return sym

    def child(
        self,
        node: str,
        release: str,
        parent: str,
        pqty: int,
        child: int,
        symbol: str,
        side: str,
        qty: int,
        strategy: str,
        now: float,
    ) -> int:
        """Execute one valid child order in full. Returns the price in cents, or 0 when the run's
        cap refuses it. The caller has validated the fields (side is "buy" or "sell")."""
        order = (parent, pqty, child, symbol, side, qty, strategy)
        return self.children(node, release, [order], now)[0]

    def children(self, node: str, release: str, orders: list[tuple], now: float) -> list[int]:
        """child() for each of orders in turn, all from one node and release at `now`; each order
        is (parent, pqty, child, symbol, side, qty, strategy). Returns their prices, in order.

        The counts that do not depend on the order are added once for the batch, which is what
        makes it cheaper than one child() per order; the results are the same.
        """
        k = len(orders)
        n = self.nodes.get(node) or self._node(node)
        n.child_orders += k
        series = n.series
        bucket = int((now - self.started_at) / BUCKET_S)
        series[bucket] = series.get(bucket, 0) + k
        # Until the run is capped an order is filled, and the one that brings the messages to the
        # cap caps it: the ones after it are refused.
        filled = 0 if self.capped else min(k, max(1, self.cap - self.messages))
        self.messages += k
        prices = self._fill(n, release, orders[:filled] if filled < k else orders, now)
        if filled < k:
            refused = k - filled
            n.rejected += refused
            self.rejects["cap"] = self.rejects.get("cap", 0) + refused
            prices += [0] * refused
        if filled and self.messages >= self.cap:
            self._cap_reached(now)
        return prices

    def _fill(self, n: NodeBook, release: str, orders: list[tuple], now: float) -> list[int]:
        """Execute orders in full (children() has counted them and applied the cap)."""
        prices: list[int] = []
        if not orders:
            return prices
        symbols = self.symbols
        positions = n.positions
        parents = n.parents
        parent_ids = n.parent_ids
        parent_shares = n.parent_shares
        log = self._log
        room = self.keep - len(log)  # appends before the log must be cut
        node = n.name
        seq = self._seq
        shares = cash = excess = overfilled = 0
        for parent, pqty, child, symbol, side, qty, strategy in orders:
            sym = symbols.get(symbol) or self.symbol(symbol, now)
            if now > sym.t:
                sym.decay(now)
            # Fill at the quote standing before the order, then move that side by its impact.
            # (The displacements are never negative, so floor() rounds them as int() would.)
            if side == "buy":
                side = _BUY
                price = sym.fair + HALF_SPREAD_CENTS + floor(sym.ask_d + 0.5)
                d = sym.ask_d + qty * sym.impact
                sym.ask_d = d if d < sym.band else sym.band
                signed = qty
            else:
                side = _SELL
                price = sym.fair - HALF_SPREAD_CENTS - floor(sym.bid_d + 0.5)
                if price < 1:
                    price = 1
                d = sym.bid_d + qty * sym.impact
                sym.bid_d = d if d < sym.band else sym.band
                signed = -qty
            prices.append(price)
            signed_cash = signed * price
            sym.shares += qty
            sym.position += signed
            sym.cash -= signed_cash
            shares += qty
            cash += signed_cash
            symbol = sym.name
            positions[symbol] = positions.get(symbol, 0) + signed

            # Excess shares: what this execution adds beyond the parent's quantity.
            p = parents.get(parent)
            if p is None:
                p = parents[parent] = len(parent_shares)
                parent_ids.append(parent)
                parent_shares.append(0)
            else:
                parent = parent_ids[p]
            before = parent_shares[p]
            after = parent_shares[p] = before + qty
            if after > pqty:
                if before > pqty:
                    excess += qty
                else:
                    # This execution is the one that takes the parent past its quantity.
                    excess += after - pqty
                    overfilled += 1

            seq += 1
            log.append(
                (seq, now, node, release, parent, child, symbol, side, qty, price / 100, strategy)
            )
            room -= 1
            if room < 0:
                drop = len(log) // 2
                del log[:drop]
                self._log_base += drop
                room = self.keep - len(log)
        k = len(orders)
        n.executions += k
        n.shares += shares
        n.cash -= cash
        releases = n.releases
        releases[release] = releases.get(release, 0) + k
        if excess:
            if n.first_excess_at is None:
                n.first_excess_at = now
            n.excess_shares += excess
            self.excess_shares += excess
            n.overfilled_parents += overfilled
            self.overfilled_parents += overfilled
        self.executions += k
        self.shares += shares
        self._seq = seq
        return prices

    def invalid(self, node: str) -> None:
        """Count a child-order message that could not be read: it counts against the cap too."""
        self.messages += 1
        self._node(node).invalid += 1
        self.rejects["invalid"] = self.rejects.get("invalid", 0) + 1
        if self.messages >= self.cap and not self.capped:
            self._cap_reached(self.clock())

    def _cap_reached(self, now: float) -> None:
        if not self.capped:
            self.capped = True
            self.capped_at = now

    def quote(self, symbol: str, now: float) -> tuple[int, int]:
        """(bid, ask) in cents at `now`."""
        sym = self.symbol(symbol, now)
        return sym.bid(), sym.ask()

    # -- reports -----------------------------------------------------------------------------

    def pnl_cents(self) -> int:
        return sum(s.pnl() for s in self.symbols.values())

    def stats(self, now: float | None = None) -> dict:
        """The /stats body."""
        now = self.clock() if now is None else now
        for sym in self.symbols.values():
            sym.decay(now)
        pnl = self.pnl_cents()
        child_orders = sum(n.child_orders for n in self.nodes.values())
        return {
            "run": self.run,
            "started_at": round(self.started_at, 3),
            "messages": self.messages,
            "cap": self.cap,
            "capped": self.capped,
            "capped_at": None if self.capped_at is None else round(self.capped_at, 3),
            "child_orders": child_orders,
            "executions": self.executions,
            "shares": self.shares,
            "excess_shares": self.excess_shares,
            "overfilled_parents": self.overfilled_parents,
            "rejects": dict(self.rejects),
            "pnl": _dollars(pnl),
            "loss_usd": _dollars(max(0, -pnl)),
            "nodes": {
                name: {
                    "child_orders": n.child_orders,
                    "executions": n.executions,
                    "shares": n.shares,
                    "excess_shares": n.excess_shares,
                    "first_excess_at": n.first_excess_at,
                    "overfilled_parents": n.overfilled_parents,
                    "rejected": n.rejected,
                    "invalid": n.invalid,
                    "position": n.position(),
                    "pnl": _dollars(n.pnl(self.symbols)),
                    "releases": dict(n.releases),
                    "connected": n.connected > 0,
                }
                for name, n in sorted(self.nodes.items())
            },
            "symbols": {
                name: {
                    "shares": s.shares,
                    "position": s.position,
                    "fair": _dollars(s.fair),
                    "bid": _dollars(s.bid()),
                    "ask": _dollars(s.ask()),
                    "mid": round(s.mid() / 100, 3),  # half a cent apart when one side moved
                    "pnl": _dollars(s.pnl()),
                }
                for name, s in sorted(self.symbols.items())
            },
        }

    def execution_page(self, since: int = 0, limit: int = 1000) -> dict:
        """The /executions body: executions with seq > since, at most `limit` of them."""
        start = max(0, since + 1 - self._log_base)
        rows = self._log[start : start + max(0, limit)]
        nxt = rows[-1][0] if rows else min(max(since, 0), self._seq)
        return {
            "run": self.run,
            "fields": list(EXECUTION_FIELDS),
            "executions": [(r[0], round(r[1], 3), *r[2:]) for r in rows],
            "next": nxt,
        }

    def series(self) -> dict:
        """The /series body: child orders per node per bucket, non-empty buckets only."""
        return {
            "bucket_s": BUCKET_S,
            "started_at": round(self.started_at, 3),
            "nodes": {
                name: [[b, c] for b, c in sorted(n.series.items())]
                for name, n in sorted(self.nodes.items())
                if n.series
            },
        }
