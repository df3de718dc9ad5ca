"""The exchange simulator: fills every valid child order a router sends (docs/protocol.md, "Router →
venue"), tags each execution with the node and release that sent it, and serves the run's counts
on the venue admin HTTP API. It owns who may trade: a hello must carry the venue's token when it
has one (VENUE_HELLO_TOKEN), and the number of open order connections is bounded.
`python3 -m market.venue [--port 9000] [--admin-port 9100] [--cap N]`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from market.adminhttp import REQUEST_TIMEOUT_S, WORKERS, AdminServer, JSONHandler
from market.cli import Parser, positive_int
from market.pricing import DEFAULT_CAP, REFUSALS, Book, NodeBook
from market.wire import ID_RE, SYMBOL_RE, LineSplitter, encode, loads, log_event

__all__ = ["MAX_CONNECTIONS", "MAX_PAGE", "RouterConnection", "Venue", "main", "render_metrics"]

MAX_PAGE = 100_000
"""Most executions one /executions call returns."""

MAX_CONNECTIONS = 1024
"""Open order connections; one more is refused (`connections`) and closed at once."""

REFUSAL_LOG_S = 5.0
"""A kind of refusal (hello_refused, connection_refused) is logged at most this often."""

_QTY_MAX = 1_000_000
_INVALID = b'{"type":"reject","id":null,"parent":null,"reason":"invalid"}\n'
_UNKNOWN = "unknown"
_monotonic = time.monotonic  # bound here: tests replace the module's `time` to drive the clock
_loads = loads
_id_ok = ID_RE.fullmatch
_symbol_ok = SYMBOL_RE.fullmatch
_PRICE_TEXT: dict[int, str] = {}  # price in cents -> its text in an exec line (wire.format_cents)
_PRICE_TEXTS = 1 << 16  # at most that many kept

# The child line as the router writes it (docs/protocol.md, "Router → venue"): compact, in this key
# order, no escapes. It is read in two parts: the head (id and parent, new on every line) by
# _child_head, and the rest, which repeats (a few quantities, symbols, sides and strategies), by
# _child_tail, once per distinct tail. Each group matches only what JSON reads and the checks of
# data_received accept: id a JSON integer, parent ID_RE, pqty and qty positive JSON integers
# (_child_tail checks they are at most _QTY_MAX), symbol SYMBOL_RE, side buy or sell, strategy any
# JSON string without escapes (JSON allows no control character in a string).
_child_head = re.compile(
    r'\{"type":"child","id":(-?+(?:0|[1-9][0-9]*+)),"parent":"([A-Za-z0-9_.:-]{1,64}+)(?=")'
).match
_child_tail_match = re.compile(
    r'","pqty":([1-9][0-9]*+),"symbol":"([A-Z]{1,8}+)","side":"(buy|sell)",'
    r'"qty":([1-9][0-9]*+),"strategy":"([^"\\\x00-\x1f]*+)"\}'
).fullmatch
_CHILD_TAILS: dict[str, tuple] = {}
_CHILD_TAILS_MAX = 4096


def _child_tail(tail: str) -> tuple:
    """(pqty, symbol, side, qty, strategy) of a plain child line's tail (after the parent), or ()
    when the tail is not plain or a quantity is out of range; kept for the next line."""
    m = _child_tail_match(tail)
    got: tuple = ()
    if m is not None:
        pqty, symbol, side, qty, strategy = m.groups()
        if int(pqty) <= _QTY_MAX and int(qty) <= _QTY_MAX:
            got = (int(pqty), symbol, side, int(qty), strategy)
    if len(_CHILD_TAILS) < _CHILD_TAILS_MAX:
        _CHILD_TAILS[tail] = got
    return got


def _log(event: str, level: str = "info", **fields: object) -> None:
    log_event("venue", event, level, **fields)


class RouterConnection(asyncio.Protocol):
    """One router's persistent order connection.

    Each data_received handles every complete line and answers them with one write: the venue
    serves the whole fleet on a shared small machine, so its cost per message is what matters.
    A refusal (a hello without the venue's token, a node or connection over its limit) is
    answered with a reject line, and the connection is closed once the batch is answered.
    """

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.book = venue.book
        self.node = _UNKNOWN
        self.release = _UNKNOWN
        self.tree: str | None = None
        self.hello = False
        self.closing = False  # refused: nothing more is read, the connection closes
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self._lines = LineSplitter()
        # Strategy names seen on this connection, so the execution log shares one string each.
        self._strategies: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        venue = self.venue
        if len(venue.connections) >= venue.max_connections:
            transport.write(self._refuse("connections", "connection_refused").encode())  # type: ignore[attr-defined]
            transport.close()
            return
        venue.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.venue.connections.discard(self)
        if self.hello:
            self.book.disconnect(self.node)
            _log(
                "router_disconnected",
                router_node=self.node,
                release=self.release,
                error=exc and str(exc),
            )

    # A router that stops reading must not make the venue buffer without bound.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        lines = self._lines.feed(data)
        if not lines or self.closing:
            return
        if not self.hello and self.venue.hello_token:
            lines = self._admit(lines)
            if not lines:
                return
        now = time.time()
        out: list[str] = []
        append = out.append
        # Valid child orders wait here to be executed together (Book.children); before any other
        # line, which may change the node (hello) or the message count (invalid), they go first.
        orders: list[tuple] = []
        child_tails = _CHILD_TAILS
        for line in lines:
            # The exact child line a router writes (its wire.py) takes the fast path: the patterns
            # check every field the way _read does.
            c = None if line is None else _child_head(line)
            fields = None
            if c is not None:
                tail = line[c.end() :]  # type: ignore[index]
                fields = child_tails.get(tail)
                if fields is None:
                    fields = _child_tail(tail)
            if fields:
                cid, parent = c.groups()  # type: ignore[union-attr]
                pqty, symbol, side, qty, strategy = fields
                cid = int(cid)
            else:
                if orders:
                    self._execute(orders, now, append)
                    orders = []
                order = self._read(line, append)
                if order is None:
                    if self.closing:
                        break
                    continue
                parent, pqty, cid, symbol, side, qty, strategy = order
            strat = self._strategies.get(strategy)
            if strat is None:
                strat = strategy[:32]
                if len(self._strategies) < 64:
                    self._strategies[strategy] = strat
            orders.append((parent, pqty, cid, symbol, side, qty, strat))
        if orders:
            self._execute(orders, now, append)
        self._answer(out)

    def _answer(self, out: list[str]) -> None:
        """Write a batch's answers; then close a refused connection, and log what the batch hit."""
        if out and self.transport is not None:
            self.transport.write("".join(out).encode())
        if self.closing and self.transport is not None:
            self.transport.close()
        book = self.book
        if book.capped and self.venue.cap_logged != book.run:
            self.venue.cap_logged = book.run
            _log("cap_reached", level="warning", run=book.run, cap=book.cap, router_node=self.node)
        if book.limits_hit:
            for reason in book.limits_hit:
                _log(
                    "limit_reached",
                    level="warning",
                    run=book.run,
                    reason=reason,
                    router_node=self.node,
                )
            book.limits_hit.clear()

    def _read(self, line: str | None, append: Callable[[str], None]) -> tuple | None:
        """A line the fast path did not take, read through JSON: the valid child order, as
        (parent, pqty, child, symbol, side, qty, strategy); else None, and its answer appended."""
        try:
            m = _loads(line)  # type: ignore[arg-type]  # None: TypeError
            if m["type"] != "child":
                raise TypeError
            order = (m["parent"], m["pqty"], m["id"], m["symbol"], m["side"], m["qty"])
            strategy = m.get("strategy", _UNKNOWN)
        except (ValueError, TypeError, KeyError, RecursionError):
            # Not a child order: a hello, or something the venue must refuse.
            append(self._other(line))
            return None
        parent, pqty, cid, symbol, side, qty = order
        if (
            type(cid) is not int
            or type(qty) is not int
            or type(pqty) is not int
            or not (0 < qty <= _QTY_MAX and 0 < pqty <= _QTY_MAX)
            or (side != "buy" and side != "sell")
            or type(parent) is not str
            or not _id_ok(parent)
            or type(symbol) is not str
            or (symbol not in self.book.symbols and not _symbol_ok(symbol))
            or type(strategy) is not str
        ):
            append(self._invalid(m))
            return None
        return (*order, strategy)

    def _execute(self, orders: list[tuple], now: float, append: Callable[[str], None]) -> None:
        """Execute valid child orders and answer each: exec, or reject when the run's cap or a
        full table (pricing.Limits) refuses it."""
        prices = self.book.children(self.node, self.release, orders, now)
        texts = _PRICE_TEXT
        for (parent, _, cid, _, _, qty, _), price in zip(orders, prices, strict=True):
            if price > 0:
                # The parent matched ID_RE, so it needs no JSON escaping; the price is
                # wire.format_cents, kept per price: this line is written once per child order.
                text = texts.get(price)
                if text is None:
                    text = f"{price // 100}.{price % 100:02d}"
                    if len(texts) < _PRICE_TEXTS:
                        texts[price] = text
                append(
                    f'{{"type":"exec","id":{cid},"parent":"{parent}","qty":{qty},"price":{text}}}\n'
                )
            else:
                reason = REFUSALS[price]
                append(f'{{"type":"reject","id":{cid},"parent":"{parent}","reason":"{reason}"}}\n')

    def _admit(self, lines: list[str | None]) -> list[str | None]:
        """With a hello token, before a hello has carried it: a hello is checked, anything else
        refuses the connection. Returns the lines after the hello that was accepted, if any."""
        assert self.transport is not None
        for i, line in enumerate(lines):
            m = _parse(line)
            if m is not None and m.get("type") == "hello":
                answer = self._hello(m)
            else:
                answer = self._refuse("unauthorized")
            if answer:
                self.transport.write(answer.encode())
            if self.closing:
                self.transport.close()
                return []
            if self.hello:
                return lines[i + 1 :]
        return []

    def _other(self, line: str | None) -> str:
        """Answer a line that is not a well-formed child order (the rare path)."""
        m = _parse(line)
        if m is not None and m.get("type") == "hello":
            return self._hello(m)
        if m is not None:
            return self._invalid(m)
        self.book.invalid(self.node)
        return _INVALID.decode()

    def _invalid(self, m: dict) -> str:
        self.book.invalid(self.node)
        cid = m.get("id")
        parent = m.get("parent")
        return encode(
            {
                "type": "reject",
                "id": cid if type(cid) is int else None,
                "parent": parent if type(parent) is str and _id_ok(parent) else None,
                "reason": "invalid",
            }
        ).decode()

    def _hello(self, m: dict) -> str:
        node, release, tree = m.get("node"), m.get("release"), m.get("tree")
        named = node if type(node) is str and _id_ok(node) else None
        if self.venue.hello_token and not self.venue.hello_ok(m.get("token")):
            return self._refuse("unauthorized", router_node=named)
        if not (
            named
            and type(release) is str
            and _id_ok(release)
            and (tree is None or (type(tree) is str and len(tree) <= 128))
        ):
            _log("bad_hello", level="warning", peer=str(self.peer))
            return _INVALID.decode()
        book = self.book
        if self.hello:
            book.disconnect(self.node)
            self.hello = False
        if not book.connect(node):
            return self._refuse("nodes", router_node=node)
        self.node, self.release, self.tree, self.hello = node, release, tree, True
        _log("router_connected", router_node=node, release=release, tree=tree, peer=str(self.peer))
        return ""

    def _refuse(self, reason: str, event: str = "hello_refused", **fields: object) -> str:
        """Refuse this connection for `reason`: counted (/stats `refused`), logged (throttled),
        closed once answered. Returns the answer, a reject line about no order."""
        self.closing = True
        self.book.count_refused(reason)
        self.venue.log_refusal(event, reason, peer=str(self.peer), **fields)
        return f'{{"type":"reject","id":null,"parent":null,"reason":"{reason}"}}\n'


def _parse(line: str | None) -> dict | None:
    """A line read as a JSON object, else None."""
    if line is None:
        return None
    try:
        m = _loads(line)
    except (ValueError, RecursionError):
        return None
    return m if type(m) is dict else None


class Venue:
    """The order server and the admin HTTP server around one Book. `token` guards the admin API's
    POST calls, `hello_token` the order port (a hello must carry it); without them (None or empty)
    POST is refused and any hello is taken."""

    def __init__(
        self,
        book: Book,
        host: str = "0.0.0.0",
        port: int = 9000,
        admin_host: str | None = None,
        admin_port: int = 9100,
        token: str | None = None,
        *,
        hello_token: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
        admin_workers: int = WORKERS,
        admin_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.book = book
        self.host = host
        self.port = port
        self.admin_host = host if admin_host is None else admin_host
        self.admin_port = admin_port
        self.token = token or ""
        self.hello_token = hello_token or ""
        self.max_connections = max_connections
        self.admin_workers = admin_workers
        self.admin_timeout = admin_timeout
        self.connections: set[RouterConnection] = set()
        self.cap_logged: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._http: _AdminServer | None = None
        # (event, reason) -> (when last logged, refusals not logged since)
        self._refusal_logs: dict[tuple[str, str], tuple[float, int]] = {}

    async def start(self) -> None:
        """Bind both ports (0 = any free one; the bound ports replace it) and start serving."""
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: RouterConnection(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._http = _AdminServer(
            (self.admin_host, self.admin_port),
            _AdminHandler,
            workers=self.admin_workers,
            request_timeout=self.admin_timeout,
        )
        self._http.venue = self
        self.admin_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="venue-admin", daemon=True).start()
        _log(
            "listening",
            host=self.host,
            port=self.port,
            admin_port=self.admin_port,
            cap=self.book.cap,
            run=self.book.run,
            auth=bool(self.token),
            hello_auth=bool(self.hello_token),
        )

    async def close(self) -> None:
        if self._http is not None:
            # shutdown() waits for the accept loop: never on the event loop's thread.
            await asyncio.get_running_loop().run_in_executor(None, self._http.shutdown)
            self._http.server_close()
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                if conn.transport is not None:
                    conn.transport.close()
            await self._server.wait_closed()

    # -- admin calls, run on the event loop so they never race the order path ------------------

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run fn on the event loop from another thread and return its result."""

        async def run() -> Any:
            return fn()

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def reset(self, cap: int | None) -> dict:
        run = self.book.reset(cap)
        _log("reset", run=run, cap=self.book.cap)
        return {"status": "ok", "run": run, "cap": self.book.cap}

    def authorized(self, header: str | None) -> bool:
        if not self.token or not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), self.token.encode())

    def hello_ok(self, token: object) -> bool:
        """Whether a hello's `token` is the venue's hello token (there is one)."""
        if type(token) is not str:
            return False
        # surrogatepass: JSON can carry a lone surrogate, which plain encode() refuses.
        given = token.encode("utf-8", "surrogatepass")
        return hmac.compare_digest(given, self.hello_token.encode())

    def log_refusal(self, event: str, reason: str, **fields: object) -> None:
        """Log a refusal, but each kind at most once per REFUSAL_LOG_S: a client hammering the
        venue must not flood its log. `unlogged` counts those left out since the last line."""
        now = _monotonic()
        key = (event, reason)
        last, unlogged = self._refusal_logs.get(key, (-REFUSAL_LOG_S, 0))
        if now - last < REFUSAL_LOG_S:
            self._refusal_logs[key] = (last, unlogged + 1)
            return
        self._refusal_logs[key] = (now, 0)
        _log(event, level="warning", reason=reason, unlogged=unlogged, **fields)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_Samples = list[tuple[dict, float]]


def render_metrics(book: Book) -> str:
    """The /metrics body, Prometheus text exposition."""
    lines: list[str] = []
    for name, kind, help_, samples in [*_run_metrics(book), *_node_metrics(book)]:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")
    return "\n".join(lines) + "\n"


def _run_metrics(book: Book) -> list[tuple[str, str, str, _Samples]]:
    """(name, kind, help, samples) of the run's metrics."""
    return [
        ("venue_run_info", "gauge", "The current run.", [({"run": book.run}, 1)]),
        ("venue_cap", "gauge", "Child-order messages allowed per run.", [({}, book.cap)]),
        ("venue_capped", "gauge", "1 once the cap is reached.", [({}, int(book.capped))]),
        (
            "venue_messages_total",
            "counter",
            "Child-order messages this run.",
            [({}, book.messages)],
        ),
        (
            "venue_rejects_total",
            "counter",
            "Child orders refused, by reason.",
            [({"reason": r}, c) for r, c in sorted(book.rejects.items())],
        ),
        (
            "venue_refused_total",
            "counter",
            "Hellos and connections refused, and child orders left out of the series, by reason.",
            [({"reason": r}, c) for r, c in sorted(book.refused.items())],
        ),
        (
            "venue_loss_usd",
            "gauge",
            "The run's loss marked at fair value.",
            [({}, round(max(0, -book.pnl_cents()) / 100, 2))],
        ),
    ]


def _node_metrics(book: Book) -> list[tuple[str, str, str, _Samples]]:
    """(name, kind, help, samples) of the per-node metrics."""
    nodes = sorted(book.nodes.items())

    def each(field: Callable[[NodeBook], float]) -> _Samples:
        return [({"node": k}, field(n)) for k, n in nodes]

    return [
        (
            "venue_child_orders_total",
            "counter",
            "Valid child orders received, by node.",
            each(lambda n: n.child_orders),
        ),
        (
            "venue_executions_total",
            "counter",
            "Executions, by node and release.",
            [
                ({"node": k, "release": r}, c)
                for k, n in nodes
                for r, c in sorted(n.releases.items())
            ],
        ),
        ("venue_shares_total", "counter", "Shares executed, by node.", each(lambda n: n.shares)),
        (
            "venue_excess_shares_total",
            "counter",
            "Shares executed beyond their parent's quantity, by node.",
            each(lambda n: n.excess_shares),
        ),
        (
            "venue_overfilled_parents_total",
            "counter",
            "Parent orders executed beyond their quantity, by node.",
            each(lambda n: n.overfilled_parents),
        ),
        (
            "venue_position_shares",
            "gauge",
            "Net shares bought by each node.",
            each(lambda n: n.position()),
        ),
        (
            "venue_pnl_usd",
            "gauge",
            "P&L of each node marked at fair value.",
            each(lambda n: round(n.pnl(book.symbols) / 100, 2)),
        ),
        (
            "venue_connected",
            "gauge",
            "Open router connections, by node.",
            each(lambda n: n.connected),
        ),
    ]


class _AdminServer(AdminServer):
    venue: Venue


class _AdminHandler(JSONHandler):
    """The routes of the venue admin API (docs/protocol.md, "Venue admin HTTP")."""

    server: _AdminServer
    server_version = "venue"

    def do_GET(self) -> None:
        venue = self.server.venue
        book = venue.book
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                self.send_json(200, {"status": "ok"})
            elif url.path == "/stats":
                self.send_json(200, venue.call(book.stats))
            elif url.path == "/series":
                self.send_json(200, venue.call(book.series))
            elif url.path == "/metrics":
                text = venue.call(lambda: render_metrics(book))
                self.send_body(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif url.path == "/executions":
                query = parse_qs(url.query)
                try:
                    since = int(query.get("since", ["0"])[-1])
                    limit = int(query.get("limit", ["1000"])[-1])
                except ValueError:
                    self.send_json(400, {"error": "since and limit must be integers"})
                    return
                limit = max(0, min(limit, MAX_PAGE))
                self.send_json(200, venue.call(lambda: book.execution_page(since, limit)))
            else:
                self.send_json(404, {"error": "not found"})
        except (TimeoutError, RuntimeError) as exc:
            self.send_json(503, {"error": f"venue busy or stopping: {exc!r}"})

    def do_POST(self) -> None:
        venue = self.server.venue
        if not venue.authorized(self.headers.get("Authorization")):
            self.send_json(401, {"error": "unauthorized"})
            return
        if urlsplit(self.path).path != "/reset":
            self.send_json(404, {"error": "not found"})
            return
        raw = self.body()
        if raw is None:
            return  # answered: too large
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json(400, {"error": "body must be a JSON object"})
            return
        cap = body.get("cap")
        if cap is not None and (type(cap) is not int or cap < 1):
            self.send_json(400, {"error": "cap must be an integer of at least 1"})
            return
        try:
            self.send_json(200, venue.call(lambda: venue.reset(cap)))
        except (TimeoutError, RuntimeError) as exc:
            self.send_json(503, {"error": f"venue busy or stopping: {exc!r}"})


async def _serve(venue: Venue) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before `listening` is logged: whoever waits for it may signal at once.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await venue.start()
    await stop.wait()
    _log("stopping", run=venue.book.run, executions=venue.book.executions)
    await venue.close()


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="venue", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default all)")
    parser.add_argument("--port", type=int, default=9000, help="order port (0 = any free port)")
    parser.add_argument("--admin-port", type=int, default=9100, help="admin HTTP port (0 = any)")
    parser.add_argument(
        "--cap",
        type=positive_int,
        default=DEFAULT_CAP,
        help=f"child-order messages per run (default {DEFAULT_CAP})",
    )
    args = parser.parse_args(argv)
    for name in ("port", "admin_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.fail(f"--{name.replace('_', '-')} must be 0..65535")
    token = os.environ.get("VENUE_ADMIN_TOKEN", "")
    if not token:
        _log("no_admin_token", level="warning", detail="VENUE_ADMIN_TOKEN unset: POST refused")
    hello_token = os.environ.get("VENUE_HELLO_TOKEN", "")
    venue = Venue(
        Book(cap=args.cap),
        args.host,
        args.port,
        None,
        args.admin_port,
        token,
        hello_token=hello_token,
    )
    try:
        asyncio.run(_serve(venue))
    except OSError as exc:
        sys.stderr.write(f"venue: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
