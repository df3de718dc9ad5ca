"""The exchange simulator: fills every valid child order a router sends (docs/protocol.md, "Router →
venue"), tags each execution with the node and release that sent it, and serves the run's counts
on the venue admin HTTP API. `python3 -m market.venue [--port 9000] [--admin-port 9100] [--cap N]`."""

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from market.cli import Parser, positive_int
from market.pricing import DEFAULT_CAP, Book
from market.wire import ID_RE, SYMBOL_RE, LineSplitter, encode, loads, log_event

__all__ = ["MAX_PAGE", "RouterConnection", "Venue", "main", "render_metrics"]

MAX_PAGE = 100_000
"""Most executions one /executions call returns."""

_QTY_MAX = 1_000_000
_INVALID = b'{"type":"reject","id":null,"parent":null,"reason":"invalid"}\n'
_UNKNOWN = "unknown"
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
    """

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.book = venue.book
        self.node = _UNKNOWN
        self.release = _UNKNOWN
        self.tree: str | None = None
        self.hello = False
        self.transport: asyncio.Transport | None = None
        self._lines = LineSplitter()
        # Strategy names seen on this connection, so the execution log shares one string each.
        self._strategies: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.venue.connections.add(self)

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
        if not lines:
            return
        book = self.book
        now = time.time()
        out: list[str] = []
        append = out.append
        # Valid child orders wait here to be executed together (Book.children); before any other
        # line, which may change the node (hello) or the message count (invalid), they go first.
        orders: list[tuple] = []
        child_tails = _CHILD_TAILS
        for line in lines:
            # The exact child line a router writes (its wire.py) takes the fast path: the patterns
            # check every field the way the checks below do.
            c = None if line is None else _child_head(line)
            if c is not None:
                tail = line[c.end() :]  # type: ignore[index]
                fields = child_tails.get(tail)
                if fields is None:
                    fields = _child_tail(tail)
                if fields:
                    cid, parent = c.groups()
                    cid = int(cid)
                    pqty, symbol, side, qty, strategy = fields
                else:
                    c = None
            if c is None:
                try:
                    m = _loads(line)  # type: ignore[arg-type]  # None: TypeError
                    if m["type"] != "child":
                        raise TypeError
                    cid = m["id"]
                    parent = m["parent"]
                    pqty = m["pqty"]
                    symbol = m["symbol"]
                    side = m["side"]
                    qty = m["qty"]
                    strategy = m.get("strategy", _UNKNOWN)
                except (ValueError, TypeError, KeyError, RecursionError):
                    # Not a child order: a hello, or something the venue must refuse.
                    if orders:
                        self._execute(orders, now, append)
                        orders = []
                    append(self._other(line))
                    continue
                if (
                    type(cid) is not int
                    or type(qty) is not int
                    or type(pqty) is not int
                    or not (0 < qty <= _QTY_MAX and 0 < pqty <= _QTY_MAX)
                    or (side != "buy" and side != "sell")
                    or type(parent) is not str
                    or not _id_ok(parent)
                    or type(symbol) is not str
                    or (symbol not in book.symbols and not _symbol_ok(symbol))
                    or type(strategy) is not str
                ):
                    if orders:
                        self._execute(orders, now, append)
                        orders = []
                    append(self._invalid(m))
                    continue
            strat = self._strategies.get(strategy)
            if strat is None:
                strat = strategy[:32]
                if len(self._strategies) < 64:
                    self._strategies[strategy] = strat
            orders.append((parent, pqty, cid, symbol, side, qty, strat))
        if orders:
            self._execute(orders, now, append)
        if out and self.transport is not None:
            self.transport.write("".join(out).encode())
        if book.capped and self.venue.cap_logged != book.run:
            self.venue.cap_logged = book.run
            _log("cap_reached", level="warning", run=book.run, cap=book.cap, router_node=self.node)

    def _execute(self, orders: list[tuple], now: float, append: Callable[[str], None]) -> None:
        """Execute valid child orders and answer each: exec, or reject when the cap refuses it."""
        prices = self.book.children(self.node, self.release, orders, now)
        texts = _PRICE_TEXT
        for (parent, _, cid, _, _, qty, _), price in zip(orders, prices, strict=True):
            if price:
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
                append(f'{{"type":"reject","id":{cid},"parent":"{parent}","reason":"cap"}}\n')

    def _other(self, line: str | None) -> str:
        """Answer a line that is not a well-formed child order (the rare path)."""
        if line is not None:
            try:
                m = _loads(line)
            except (ValueError, RecursionError):
                m = None
            if type(m) is dict and m.get("type") == "hello":
                return self._hello(m)
            if type(m) is dict:
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
        if not (
            type(node) is str
            and _id_ok(node)
            and type(release) is str
            and _id_ok(release)
            and (tree is None or (type(tree) is str and len(tree) <= 128))
        ):
            _log("bad_hello", level="warning", peer=str(self.peer))
            return _INVALID.decode()
        if self.hello:
            self.book.disconnect(self.node)
        self.node, self.release, self.tree, self.hello = node, release, tree, True
        self.book.connect(node)
        _log("router_connected", router_node=node, release=release, tree=tree, peer=str(self.peer))
        return ""


class Venue:
    """The order server and the admin HTTP server around one Book."""

    def __init__(
        self,
        book: Book,
        host: str = "0.0.0.0",
        port: int = 9000,
        admin_host: str | None = None,
        admin_port: int = 9100,
        token: str | None = None,
    ) -> None:
        self.book = book
        self.host = host
        self.port = port
        self.admin_host = host if admin_host is None else admin_host
        self.admin_port = admin_port
        self.token = token or ""
        self.connections: set[RouterConnection] = set()
        self.cap_logged: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    async def start(self) -> None:
        """Bind both ports (0 = any free one; the bound ports replace it) and start serving."""
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: RouterConnection(self), self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._http = _AdminServer((self.admin_host, self.admin_port), _AdminHandler)
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


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(book: Book) -> str:
    """The /metrics body, Prometheus text exposition."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")

    nodes = sorted(book.nodes.items())
    metric("venue_run_info", "gauge", "The current run.", [({"run": book.run}, 1)])
    metric("venue_cap", "gauge", "Child-order messages allowed per run.", [({}, book.cap)])
    metric("venue_capped", "gauge", "1 once the cap is reached.", [({}, int(book.capped))])
    metric(
        "venue_messages_total", "counter", "Child-order messages this run.", [({}, book.messages)]
    )
    metric(
        "venue_rejects_total",
        "counter",
        "Child orders refused, by reason.",
        [({"reason": r}, c) for r, c in sorted(book.rejects.items())],
    )
    metric(
        "venue_child_orders_total",
        "counter",
        "Valid child orders received, by node.",
        [({"node": k}, n.child_orders) for k, n in nodes],
    )
    metric(
        "venue_executions_total",
        "counter",
        "Executions, by node and release.",
        [({"node": k, "release": r}, c) for k, n in nodes for r, c in sorted(n.releases.items())],
    )
    metric(
        "venue_shares_total",
        "counter",
        "Shares executed, by node.",
        [({"node": k}, n.shares) for k, n in nodes],
    )
    metric(
        "venue_excess_shares_total",
        "counter",
        "Shares executed beyond their parent's quantity, by node.",
        [({"node": k}, n.excess_shares) for k, n in nodes],
    )
    metric(
        "venue_overfilled_parents_total",
        "counter",
        "Parent orders executed beyond their quantity, by node.",
        [({"node": k}, n.overfilled_parents) for k, n in nodes],
    )
    metric(
        "venue_position_shares",
        "gauge",
        "Net shares bought by each node.",
        [({"node": k}, n.position()) for k, n in nodes],
    )
    metric(
        "venue_pnl_usd",
        "gauge",
        "P&L of each node marked at fair value.",
        [({"node": k}, round(n.pnl(book.symbols) / 100, 2)) for k, n in nodes],
    )
    metric(
        "venue_connected",
        "gauge",
        "Open router connections, by node.",
        [({"node": k}, n.connected) for k, n in nodes],
    )
    metric(
        "venue_loss_usd",
        "gauge",
        "The run's loss marked at fair value.",
        [({}, round(max(0, -book.pnl_cents()) / 100, 2))],
    )
    return "\n".join(lines) + "\n"


class _AdminServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    venue: Venue


class _AdminHandler(BaseHTTPRequestHandler):
    server: _AdminServer
    server_version = "venue"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """http.server logs every request on stderr; the venue logs lifecycle events only."""

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())

    def do_GET(self) -> None:
        venue = self.server.venue
        book = venue.book
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                self._json(200, {"status": "ok"})
            elif url.path == "/stats":
                self._json(200, venue.call(book.stats))
            elif url.path == "/series":
                self._json(200, venue.call(book.series))
            elif url.path == "/metrics":
                text = venue.call(lambda: render_metrics(book))
                self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif url.path == "/executions":
                query = parse_qs(url.query)
                try:
                    since = int(query.get("since", ["0"])[-1])
                    limit = int(query.get("limit", ["1000"])[-1])
                except ValueError:
                    self._json(400, {"error": "since and limit must be integers"})
                    return
                limit = max(0, min(limit, MAX_PAGE))
                self._json(200, venue.call(lambda: book.execution_page(since, limit)))
            else:
                self._json(404, {"error": "not found"})
        except (TimeoutError, RuntimeError) as exc:
            self._json(503, {"error": f"venue busy or stopping: {exc!r}"})

    def do_POST(self) -> None:
        venue = self.server.venue
        if not venue.authorized(self.headers.get("Authorization")):
            self._json(401, {"error": "unauthorized"})
            return
        if urlsplit(self.path).path != "/reset":
            self._json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 65536:
            self._json(413, {"error": "body too large"})
            return
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._json(400, {"error": "body must be a JSON object"})
            return
        cap = body.get("cap")
        if cap is not None and (type(cap) is not int or cap < 1):
            self._json(400, {"error": "cap must be an integer of at least 1"})
            return
        try:
            self._json(200, venue.call(lambda: venue.reset(cap)))
        except (TimeoutError, RuntimeError) as exc:
            self._json(503, {"error": f"venue busy or stopping: {exc!r}"})


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
    venue = Venue(Book(cap=args.cap), args.host, args.port, None, args.admin_port, token)
    try:
        asyncio.run(_serve(venue))
    except OSError as exc:
        sys.stderr.write(f"venue: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
