"""Bytes on the wire (docs/protocol.md): newline framing with the 4096-byte line limit, writes
batched per event, strict validation of client orders and venue messages, and the encoders of
every message the router sends. Nothing here raises on hostile input except the documented
rejections."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
from typing import Any, cast

__all__ = [
    "EXEC",
    "MAX_LINE",
    "REJECT",
    "RETRY_REASONS",
    "LineBuffer",
    "Order",
    "Outbox",
    "Rejected",
    "VenueMessageError",
    "ack",
    "cancelled",
    "child",
    "closing",
    "fill",
    "hello",
    "no_delay",
    "parse_order",
    "parse_venue",
    "reject",
]

MAX_LINE = 4096  # bytes per line, the newline included

RETRY_REASONS = frozenset({"intake_paused", "venue_down", "overloaded"})

_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_SYMBOL = re.compile(r"[A-Z]{1,8}")
_FIELDS = frozenset({"type", "id", "symbol", "side", "qty", "rlp"})
_REQUIRED = ("type", "id", "symbol", "side", "qty")
_SIDES = frozenset({"buy", "sell"})
_MAX_QTY = 1_000_000
_DETAIL_MAX = 80


class LineBuffer:
    """Splits a byte stream into lines; a line longer than the limit comes out as None, once,
    and the rest of it is dropped as it arrives (never buffered)."""

    __slots__ = ("_discarding", "_limit", "_partial")

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._partial = b""
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | None]:
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return []
            data = data[end + 1 :]
            self._discarding = False
        if self._partial:
            data = self._partial + data
        pieces = data.split(b"\n")
        partial = pieces.pop()
        limit = self._limit
        # A line of `limit` bytes plus its newline is one byte too many.
        if pieces and max(map(len, pieces)) >= limit:
            lines = [None if len(line) >= limit else line for line in pieces]
        else:
            lines = cast("list[bytes | None]", pieces)
        if len(partial) >= limit:
            lines.append(None)
            self._discarding = True
            partial = b""
        self._partial = partial
        return lines


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Send small answers at once. asyncio only does this for sockets whose proto is TCP, and
    sockets accepted from socket.create_server (or inherited) have proto 0."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Outbox:
    """Collects the lines for one transport and writes them in one call: at the end of the
    event that produced them (`hold` ... `flush`), or at the next turn of the loop."""

    __slots__ = ("_held", "_lines", "_loop", "_scheduled", "_transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport) -> None:
        self._loop = loop
        self._transport: asyncio.WriteTransport | None = transport
        self._lines: list[bytes] = []
        self._held = False
        self._scheduled = False

    @property
    def open(self) -> bool:
        return self._transport is not None

    def add(self, line: bytes) -> None:
        if self._transport is None:
            return  # the peer went away: its messages are dropped, not queued
        self._lines.append(line)
        if not self._held and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_soon)

    def hold(self) -> None:
        """Keep what is added until `flush`: the caller writes once at the end of its event."""
        self._held = True

    def flush(self) -> None:
        self._held = False
        lines = self._lines
        if not lines:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(lines[0] if len(lines) == 1 else b"".join(lines))
        lines.clear()

    def close(self) -> None:
        """Drop everything from now on (the connection is gone or closing)."""
        self._transport = None
        self._lines.clear()

    def _flush_soon(self) -> None:
        self._scheduled = False
        if not self._held:
            self.flush()


class Order:
    """A validated parent order from a client."""

    __slots__ = ("id", "qty", "rlp", "side", "symbol")

    def __init__(self, order_id: str, symbol: str, side: str, qty: int, rlp: bool) -> None:
        self.id = order_id
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.rlp = rlp


class Rejected(Exception):
    """An order line the router refuses; `order_id` is None when the id could not be read."""

    def __init__(self, reason: str, detail: str | None = None, order_id: str | None = None) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.order_id = order_id


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# One decoder for all order lines: json.loads with an option builds a new one per call.
_ORDER_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _load_line(line: bytes) -> Any:
    """JSON value of one line, or Rejected("malformed"); deep nesting is caught here too."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("malformed", "not UTF-8") from None
    try:
        return _ORDER_DECODER.decode(text)
    except RecursionError:
        raise Rejected("malformed", "nested too deep") from None
    except ValueError:
        raise Rejected("malformed", "not JSON") from None


def _invalid(field: str, order_id: str | None, why: str = "") -> Rejected:
    detail = f"{field}: {why}" if why else field
    return Rejected("invalid", detail[:_DETAIL_MAX], order_id)


# The fast path: the canonical order line (compact, in the documented key order, as the load
# generator writes it) is read without JSON. Its groups only match what the strict path accepts:
# ASCII without escapes (so valid UTF-8, and the same text as JSON reads), an id and a symbol of
# their charsets, a side, a JSON integer without leading zero or sign of at most 7 digits (the
# range is checked after), a boolean. Any other line, accepted or not, goes through JSON.
_order_match = re.compile(
    rb'\{"type":"order","id":"([A-Za-z0-9_.:\-]{1,64})","symbol":"([A-Z]{1,8})",'
    rb'"side":"(buy|sell)","qty":([1-9][0-9]{0,6})(?:,"rlp":(true|false))?\}'
).fullmatch
_SIDE_TEXT = {b"buy": "buy", b"sell": "sell"}


def parse_order(line: bytes) -> Order:
    """Validate one order line (without its newline) per the protocol, or raise Rejected."""
    m = _order_match(line)
    if m is not None:
        order_id, symbol, side, digits, rlp = m.groups()
        qty = int(digits)
        if qty <= _MAX_QTY:
            return Order(order_id.decode(), symbol.decode(), _SIDE_TEXT[side], qty, rlp == b"true")
    return _parse_order_json(line)


def _parse_order_json(line: bytes) -> Order:
    """parse_order through JSON: any line."""
    doc = _load_line(line)
    if type(doc) is not dict:
        raise Rejected("malformed", "not an object")
    order_id = doc.get("id")
    if type(order_id) is not str or not _ID.fullmatch(order_id):
        order_id = None
    keys = doc.keys()
    if not keys <= _FIELDS:
        unknown = min(k for k in keys if k not in _FIELDS)
        raise _invalid(f"unknown field {unknown!r}", order_id)
    for name in _REQUIRED:
        if name not in doc:
            raise _invalid(name, order_id, "missing")
    if doc["type"] != "order":
        raise _invalid("type", order_id, 'expected "order"')
    if order_id is None:
        raise _invalid("id", None, "expected 1-64 of A-Z a-z 0-9 _ . : -")
    symbol = doc["symbol"]
    if type(symbol) is not str or not _SYMBOL.fullmatch(symbol):
        raise _invalid("symbol", order_id, "expected 1-8 of A-Z")
    side = doc["side"]
    if type(side) is not str or side not in _SIDES:
        raise _invalid("side", order_id, 'expected "buy" or "sell"')
    qty = doc["qty"]
    if type(qty) is not int or not 1 <= qty <= _MAX_QTY:
        raise _invalid("qty", order_id, f"expected an integer 1..{_MAX_QTY}")
    rlp = doc.get("rlp", False)
    if type(rlp) is not bool:
        raise _invalid("rlp", order_id, "expected a boolean")
    return Order(order_id, symbol, side, qty, rlp)


# Encoders. Ids and symbols were validated to need no JSON escaping, so the hot messages are
# formatted directly; the rare ones go through json.dumps.


def ack(order_id: str) -> bytes:
    return b'{"type":"ack","id":"%s"}\n' % order_id.encode()


def fill(order_id: str, qty: int, price: float, cum: int, leaves: int) -> bytes:
    return (
        f'{{"type":"fill","id":"{order_id}","qty":{qty},"price":{price!r},'
        f'"cum":{cum},"leaves":{leaves}}}\n'
    ).encode()


def _dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def reject(order_id: str | None, reason: str, detail: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "type": "reject",
        "id": order_id,
        "reason": reason,
        "retry": reason in RETRY_REASONS,
    }
    if detail:
        doc["detail"] = detail
    return _dumps(doc)


def cancelled(order_id: str, cum: int, reason: str) -> bytes:
    return _dumps({"type": "cancelled", "id": order_id, "cum": cum, "reason": reason})


def closing(reason: str) -> bytes:
    """The handover: the client sends nothing more on this connection and reconnects; every line
    it already sent is still answered."""
    return _dumps({"type": "closing", "reason": reason})


def hello(node: str, release: str, tree: str, token: str | None = None) -> bytes:
    """The first line to the venue: who sends, and with `token`, the proof that the venue may
    trust it (the venue checks it against its own copy)."""
    doc = {"type": "hello", "node": node, "release": release, "tree": tree}
    if token:
        doc["token"] = token
    return _dumps(doc)


def child(
    child_id: int, parent_id: str, pqty: int, symbol: str, side: str, qty: int, strategy: str
) -> bytes:
    return (
        f'{{"type":"child","id":{child_id},"parent":"{parent_id}","pqty":{pqty},'
        f'"symbol":"{symbol}","side":"{side}","qty":{qty},"strategy":"{strategy}"}}\n'
    ).encode()


# Venue -> router.

EXEC = "exec"
REJECT = "reject"


class VenueMessageError(ValueError):
    """A line from the venue that is not a well-formed exec or reject."""


# The fast path: the venue's exec line as it writes it (compact, this key order, the price with
# a few decimals), read without JSON. The numbers match only JSON numbers (no sign, no leading
# zero) of bounded digits, so the price is finite and float() of it is what JSON reads; the
# parent (not used) only of characters that need no escaping. Any other line goes through JSON.
_exec_match = re.compile(
    rb'\{"type":"exec","id":(0|[1-9][0-9]{0,17}),"parent":"[A-Za-z0-9_.:\-]*",'
    rb'"qty":([1-9][0-9]{0,17}),"price":((?:0|[1-9][0-9]{0,14})\.[0-9]{1,4})\}'
).fullmatch


_PRICE_ERROR = "price: expected a positive finite number"


def parse_venue(line: bytes) -> tuple[str, int, int, float] | tuple[str, int, str]:
    """("exec", child id, qty, price) or ("reject", child id, reason). An execution's quantity
    and price are positive (its quantity against the child's is the egress's check)."""
    m = _exec_match(line)
    if m is not None:
        price = float(m[3])
        if price > 0.0:
            return EXEC, int(m[1]), int(m[2]), price
        raise VenueMessageError(_PRICE_ERROR)
    return _parse_venue_json(line)


def _parse_venue_json(line: bytes) -> tuple[str, int, int, float] | tuple[str, int, str]:
    """parse_venue through JSON: any line."""
    try:
        doc = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise VenueMessageError("not JSON") from None
    if type(doc) is not dict:
        raise VenueMessageError("not an object")
    kind = doc.get("type")
    child_id = doc.get("id")
    if type(child_id) is not int:
        raise VenueMessageError("id: expected an integer")
    if kind == EXEC:
        qty = doc.get("qty")
        price = doc.get("price")
        if type(qty) is not int or qty <= 0:
            raise VenueMessageError("qty: expected a positive integer")
        # A price of 0 or less, or not finite, would become the risk gate's reference price.
        if type(price) not in (int, float) or not (math.isfinite(price) and price > 0):
            raise VenueMessageError(_PRICE_ERROR)
        return EXEC, child_id, qty, price
    if kind == REJECT:
        reason = doc.get("reason")
        return REJECT, child_id, reason if type(reason) is str else "unknown"
    raise VenueMessageError(f"type: unexpected {str(kind)[:20]!r}")
