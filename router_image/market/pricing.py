"""The venue's book-keeping, free of I/O: a price model per symbol, positions, cash and P&L per node
and per symbol, excess shares per parent order, the execution log, the per-run message cap, the
child-order series, and the bounds of every table a client can make grow (Limits). Every method
takes the time it should use, so tests drive the clock."""

from __future__ import annotations

import math
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from math import floor

__all__ = [
    "BAND",
    "BUCKET_S",
    "DECAY_S",
    "DEFAULT_CAP",
    "EXECUTION_FIELDS",
    "HALF_SPREAD_CENTS",
    "IMPACT_PER_SHARE",
    "REFUSALS",
    "Book",
    "Limits",
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


@dataclass(frozen=True)
class Limits:
    """The most entries each table of a run may hold. A client picks the node names, parent ids,
    symbols and releases it sends, so without these a thousand names grow memory a thousand times;
    what does not fit is refused with its reason and counted (Book.rejects, Book.refused). The
    defaults hold every lab run with room to spare (8 to 32 nodes, 100,000 parents per router in
    `knight bench`, a few symbols) and keep the worst case under 1 GB, the execution log's million
    rows (Book.keep) included: parents 140 MB, positions 100 MB, series 400 MB at most."""

    nodes: int = 256
    """Node names, the venue's `unknown` (connections that said no hello) included."""
    parents: int = 1_000_000
    """Parent ids with an execution, over every node (about 140 bytes each)."""
    node_parents: int = 250_000
    """Parent ids with an execution, per node: one node cannot take every slot."""
    symbols: int = 4096
    """Symbols with an execution (so also each node's positions)."""
    releases: int = 64
    """Releases with an execution, per node."""
    buckets: int = 1 << 14
    """Buckets of the child-order series per node: 68 minutes of a run; later child orders still
    trade but are left out of the series (counted in Book.refused["series"])."""


# What children() answers for an order it did not execute; a fill is its price, at least 1 cent.
_CAP = 0
_PARENTS = -1
_SYMBOLS = -2
_RELEASES = -3
REFUSALS = {_CAP: "cap", _PARENTS: "parents", _SYMBOLS: "symbols", _RELEASES: "releases"}
"""children()'s answer for a refused child order -> the reason (a reject's `reason` on the wire)."""

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

    def take(self, side: str, qty: int) -> int:
        """Fill an order of qty shares at the quote standing before it (a buy lifts the offer, a
        sell hits the bid), then move that side by its impact; returns the price in cents."""
        # The displacements are never negative, so floor() rounds them as int() would.
        if side == "buy":
            price = self.fair + HALF_SPREAD_CENTS + floor(self.ask_d + 0.5)
            d = self.ask_d + qty * self.impact
            self.ask_d = d if d < self.band else self.band
            self.position += qty
            self.cash -= qty * price
        else:
            price = self.fair - HALF_SPREAD_CENTS - floor(self.bid_d + 0.5)
            if price < 1:
                price = 1
            d = self.bid_d + qty * self.impact
            self.bid_d = d if d < self.band else self.band
            self.position -= qty
            self.cash += qty * price
        self.shares += qty
        return price

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
        limits: Limits | None = None,
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.clock = clock
        # The execution log is bounded by the cap anyway; keep bounds it if the cap is set huge.
        self.keep = keep
        self.limits = Limits() if limits is None else limits
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
        self.rejects: dict[str, int] = {}  # child orders refused, by reason (REFUSALS, "invalid")
        self.refused: dict[str, int] = {}  # the rest turned away or left out (count_refused)
        # Reasons a limit refused something for the first time this run, for the venue to log.
        self.limits_hit: list[str] = []
        self.executions = 0
        self.shares = 0
        self.excess_shares = 0
        self.overfilled_parents = 0
        self.symbols: dict[str, SymbolBook] = {}
        self.nodes: dict[str, NodeBook] = {}
        self._parents = 0  # parent ids over every node (Limits.parents)
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

    def connect(self, node: str) -> bool:
        """Count an open connection of `node`; False, and nothing counted, when the node is new and
        the node table is full (the caller refuses the hello)."""
        if node not in self.nodes and len(self.nodes) >= self.limits.nodes:
            return False
        self._connected[node] = self._connected.get(node, 0) + 1
        self._node(node).connected += 1
        return True

    def disconnect(self, node: str) -> None:
        left = self._connected.get(node, 0) - 1
        if left > 0:
            self._connected[node] = left
        else:
            self._connected.pop(node, None)
        self._node(node).connected = max(left, 0)

    # -- orders ------------------------------------------------------------------------------

    def count_refused(self, reason: str, n: int = 1, limit: bool = False) -> None:
        """Count what the venue turned away that is not a child order (a hello, a connection: the
        venue logs those), or child orders left out of the series (`limit`: logged once per run
        through limits_hit): /stats `refused`."""
        refused = self.refused
        if reason not in refused:
            refused[reason] = 0
            if limit:
                self.limits_hit.append(reason)
        refused[reason] += n

    def _reject(self, n: NodeBook, reason: str, count: int) -> None:
        """Count child orders refused for `reason`: /stats `rejects`."""
        n.rejected += count
        rejects = self.rejects
        if reason not in rejects:
            rejects[reason] = 0
            if reason != "cap":  # the cap has its own event (cap_reached)
                self.limits_hit.append(reason)
        rejects[reason] += count

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
        is (parent, pqty, child, symbol, side, qty, strategy). Returns, in order, each one's price
        in cents, or for an order refused a key of REFUSALS (0: the cap, < 0: a table is full).

        The counts that do not depend on the order are added once for the batch, which is what
        makes it cheaper than one child() per order; the results are the same.
        """
        k = len(orders)
        n = self.nodes.get(node) or self._node(node)
        n.child_orders += k
        series = n.series
        bucket = int((now - self.started_at) / BUCKET_S)
        count = series.get(bucket)
        if count is not None:
            series[bucket] = count + k
        elif len(series) < self.limits.buckets:
            series[bucket] = k
        else:
            self.count_refused("series", k, limit=True)
        # Until the run is capped an order is filled, and the one that brings the messages to the
        # cap caps it: the ones after it are refused.
        filled = 0 if self.capped else min(k, max(1, self.cap - self.messages))
        self.messages += k
        batch = orders[:filled] if filled < k else orders
        limits = self.limits
        if filled and release not in n.releases and len(n.releases) >= limits.releases:
            self._reject(n, "releases", filled)
            prices = [_RELEASES] * filled
        elif filled > min(
            limits.node_parents - len(n.parent_shares),
            limits.parents - self._parents,
            limits.symbols - len(self.symbols),
        ):
            prices = self._fill_room(n, release, batch, now)  # the tables may not hold them all
        else:
            prices = self._fill(n, release, batch, now)
        if filled < k:
            self._reject(n, "cap", k - filled)
            prices += [_CAP] * (k - filled)
        if filled and self.messages >= self.cap:
            self._cap_reached(now)
        return prices

    def _fill(self, n: NodeBook, release: str, orders: list[tuple], now: float) -> list[int]:
        """Execute orders in full: children() has counted them, applied the cap and made sure the
        tables hold every new parent and symbol among them."""
        prices: list[int] = []
        symbols = self.symbols
        positions = n.positions
        parents = n.parents
        parent_ids = n.parent_ids
        parent_shares = n.parent_shares
        known = len(parent_shares)
        log = self._log
        room = self.keep - len(log)  # appends before the log must be cut
        node = n.name
        seq = self._seq
        shares = cash = excess = overfilled = 0
        for parent, pqty, child, symbol, side, qty, strategy in orders:
            sym = symbols.get(symbol) or self.symbol(symbol, now)
            if now > sym.t:
                sym.decay(now)
            price = sym.take(side, qty)
            if side == "buy":
                side = _BUY
                signed = qty
            else:
                side = _SELL
                signed = -qty
            prices.append(price)
            shares += qty
            cash += signed * price
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
                room = self._cut_log()
        self._parents += len(parent_shares) - known
        self._tally(n, release, seq - self._seq, shares, cash, excess, overfilled, now)
        self._seq = seq
        return prices

    def _fill_room(self, n: NodeBook, release: str, orders: list[tuple], now: float) -> list[int]:
        """_fill() for the orders whose new parent and new symbol the tables still hold (Limits),
        in turn; the others are refused and counted. The answers, in order."""
        limits = self.limits
        parent_room = min(
            limits.node_parents - len(n.parent_shares), limits.parents - self._parents
        )
        symbol_room = limits.symbols - len(self.symbols)
        new_parents: set[str] = set()
        new_symbols: set[str] = set()
        answers: list[int] = []  # a refusal's code, or 1 for an order to fill
        fill: list[tuple] = []
        for order in orders:
            parent, symbol = order[0], order[3]
            if parent not in n.parents and parent not in new_parents:
                if len(new_parents) >= parent_room:
                    answers.append(self._refuse(n, _PARENTS))
                    continue
                new_parent = True
            else:
                new_parent = False
            if symbol not in self.symbols and symbol not in new_symbols:
                if len(new_symbols) >= symbol_room:
                    answers.append(self._refuse(n, _SYMBOLS))
                    continue
                new_symbols.add(symbol)
            if new_parent:
                new_parents.add(parent)
            answers.append(1)
            fill.append(order)
        prices = iter(self._fill(n, release, fill, now))
        return [next(prices) if a == 1 else a for a in answers]

    def _refuse(self, n: NodeBook, code: int) -> int:
        """Count one child order refused for REFUSALS[code]; returns the code."""
        self._reject(n, REFUSALS[code], 1)
        return code

    def _cut_log(self) -> int:
        """Drop the older half of the execution log (Book.keep); returns the room left."""
        log = self._log
        drop = len(log) // 2
        del log[:drop]
        self._log_base += drop
        return self.keep - len(log)

    def _tally(
        self,
        n: NodeBook,
        release: str,
        k: int,
        shares: int,
        cash: int,
        excess: int,
        overfilled: int,
        now: float,
    ) -> None:
        """Add a batch's k executions (_fill) to the node's and the run's counts."""
        if not k:
            return
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
            "refused": dict(self.refused),
            "limits": asdict(self.limits),
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
