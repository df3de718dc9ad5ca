"""The admin HTTP API (health, version, metrics and the token-protected mutating calls): a small
HTTP/1.1 server on the router's own event loop, one request per connection. Actions run on the
loop, so they read a consistent snapshot and never race the router; a long poll waits on the
loop too (a coroutine), and only a blocking action (one that starts and waits for a process)
runs in a thread of its own.

It cannot be starved: at most 64 connections are served at once, and when they are all taken a
new connection takes the slot of the oldest one that is not an authenticated POST (a request
still arriving, a long poll, which is answered at once as if its time were up, or a finished
one lingering), so the kill switch always gets in. Every action is bounded: a blocking one by
its route's timeout (then 503), a long poll by its own wait, its route's bound, its client
hanging up, or the server needing its slot.

Written for startup time: every release switch starts a new process, and the standard library's
http.server alone would import email, html, mimetypes, http.client and socketserver."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .log import Log

__all__ = ["AdminServer", "Reply", "Route", "query_number"]

_MAX_HEAD = 16384  # request line and headers
_MAX_BODY = 65536  # bodies are read and ignored; a larger one is refused (413)
_TIMEOUT_S = 5.0  # to receive a whole request, to run a blocking action, to send the answer
_POLL_MAX_S = 10.0  # a long poll's bound when its route sets none
_MAX_CONNECTIONS = 64  # served at once; beyond, a new one takes the slot of an unprivileged one
_LINGER_S = 1.0  # after answering, reading what the client still sends, so it is not reset
_LINGER_MAX = 1 << 20
_CHUNK = 65536
_HEX = re.compile(rb"[0-9A-Fa-f]{1,8}")  # a chunk size
_NUMBER = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")  # no sign, exponent, nan or inf

# What a connection is doing, for the choice of the one to give up its slot.
_RECEIVING, _ACTING, _POLLING, _SENDING, _LINGERING = range(5)

_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any] | str  # a mapping is sent as JSON, a string as Prometheus text


@dataclass(frozen=True)
class Route:
    method: str
    action: Callable[..., Any]  # returns a Reply; runs on the event loop, unless `blocking`
    #: The action takes the query parameters (a dict of the first value of each).
    query: bool = False
    #: The action waits for something outside the loop (a process): it runs in a thread of
    #: its own, and is answered 503 if it takes longer than `timeout_s`.
    blocking: bool = False
    #: A long poll: the action is a coroutine function taking (query, cut) -> Reply, where
    #: `cut` is a future the server resolves when the poll must answer now (its client hung
    #: up, the server needs its slot or stops, or `timeout_s` is up).
    poll: bool = False
    #: The action's bound (None: the server's timeout, or _POLL_MAX_S for a poll).
    timeout_s: float | None = None


def query_number(query: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    """The number `name` of a query: plain decimal digits within [low, high] (so never NaN,
    infinite, signed or in exponent form); None when it is not one (the caller answers 400).
    An absent parameter reads as `low`."""
    text = query.get(name)
    if text is None:
        return low
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if low <= value <= high else None


class _Connection:
    """One connection being served: what it is doing, since when, and whether it may be asked
    to give up its slot (only an authenticated POST may not)."""

    __slots__ = ("cut", "evicted", "phase", "privileged", "since", "task")

    def __init__(self, since: float) -> None:
        self.since = since
        self.phase = _RECEIVING
        self.privileged = False
        self.evicted = False
        self.cut: asyncio.Future[str] | None = None  # set while it long-polls
        self.task: asyncio.Task[None] | None = None


class _Refused(Exception):
    """A request answered without reaching an action (malformed, too large, ...)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.reply = Reply(status, {"error": error})


class _Stream:
    """The bytes received on one connection and not consumed yet."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._loop = loop
        self._sock = sock
        self.buf = b""

    async def receive(self) -> bool:
        """Receive some more; False when the client hung up."""
        data = await self._loop.sock_recv(self._sock, _CHUNK)
        self.buf += data
        return bool(data)

    async def more(self) -> None:
        if not await self.receive():
            raise _Refused(400, "incomplete request")

    async def request(self) -> tuple[str, str, dict[str, str]]:
        """The method, the target and the headers (lower-case names; the first of repeated
        ones)."""
        while True:
            self.buf = self.buf.lstrip(b"\r\n")  # empty lines before a request are allowed
            head_end, body_start = _head_end(self.buf)
            if head_end >= 0:
                break
            if len(self.buf) > _MAX_HEAD:
                raise _Refused(431, "request header too large")
            await self.more()
        head = self.buf[:head_end].decode("latin-1")
        self.buf = self.buf[body_start:]
        line, *fields = head.split("\n")
        words = line.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise _Refused(400, "bad request line")
        method, target, version = words
        major, dot, minor = version[5:].partition(".")
        if not (dot and _digit(major) and _digit(minor)):
            raise _Refused(400, "bad request line")
        if major != "1":
            raise _Refused(505, "HTTP/1.x only")
        headers: dict[str, str] = {}
        for field in fields:
            name, colon, value = field.rstrip("\r").partition(":")
            if not colon or not name or name != name.strip():
                raise _Refused(400, "bad header")  # folded lines too (obsolete)
            name = name.lower()
            value = value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise _Refused(400, "conflicting content-length")
            headers.setdefault(name, value)
        return method, target, headers

    async def discard_body(self, headers: Mapping[str, str]) -> None:
        """Read the body (unused) so the client is not reset when the connection closes."""
        coding = headers.get("transfer-encoding", "identity").lower()
        if coding == "chunked":
            await self._discard_chunks()
            return
        if coding != "identity":
            raise _Refused(501, f"transfer-encoding {coding} not supported")
        length = headers.get("content-length", "0")
        if not _digits(length):
            raise _Refused(400, "bad content-length")
        # Leading zeros aside, more than 7 digits is over the limit anyway (and int() refuses
        # a string of over 4300 digits).
        digits = length.lstrip("0")
        size = int(digits or "0") if len(digits) <= 7 else _MAX_BODY + 1
        if size > _MAX_BODY:
            raise _Refused(413, f"request body over {_MAX_BODY} bytes")
        if size > len(self.buf) and headers.get("expect", "").lower() == "100-continue":
            await self._loop.sock_sendall(self._sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        await self._skip(size)

    async def _discard_chunks(self) -> None:
        total = 0
        while True:
            size_field = (await self._line()).split(b";", 1)[0].strip()
            # Hex digits only: int() would also take a sign, "0x" and underscores.
            if not _HEX.fullmatch(size_field):
                raise _Refused(400, "bad chunk size")
            size = int(size_field, 16)
            if size == 0:
                break
            total += size
            if total > _MAX_BODY:
                raise _Refused(413, f"request body over {_MAX_BODY} bytes")
            await self._skip(size)
            if await self._line():
                raise _Refused(400, "bad chunk")
        while await self._line():
            pass  # trailer fields, up to the empty line

    async def _line(self) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise _Refused(400, "line too long")
            await self.more()
        line, self.buf = self.buf[:end], self.buf[end + 1 :]
        return line.rstrip(b"\r")

    async def _skip(self, size: int) -> None:
        while len(self.buf) < size:
            size -= len(self.buf)
            self.buf = b""
            await self.more()
        self.buf = self.buf[size:]


def _head_end(buf: bytes) -> tuple[int, int]:
    """Where the header block ends (at its first empty line, CRLF or bare LF) and the body
    starts; (-1, -1) when it is not all there yet."""
    lf = buf.find(b"\n\n", 0, _MAX_HEAD + 2)
    crlf = buf.find(b"\n\r\n", 0, _MAX_HEAD + 3)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 3
    return (lf, lf + 2) if lf >= 0 else (-1, -1)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _digit(text: str) -> bool:
    return len(text) == 1 and _digits(text)


def _http_date() -> str:
    t = time.gmtime()
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _encode(reply: Reply) -> bytes:
    """The whole HTTP response: status line, headers and body."""
    body = reply.body
    if isinstance(body, str):
        data = body.encode()
        ctype = _PROMETHEUS
    else:
        data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        ctype = "application/json"
    head = (
        f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, '')}\r\n"
        f"Server: smars-admin\r\nDate: {_http_date()}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n"
    )
    if reply.status == 405 and isinstance(body, Mapping) and "allowed" in body:
        head += f"Allow: {body['allowed']}\r\n"
    return (head + "\r\n").encode("latin-1") + data


class AdminServer:
    """Routes requests to actions run on `loop`; POSTs need `Authorization: Bearer <token>`.
    Everything but the blocking actions' threads runs on the loop: start and stop_serving too."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        routes: Mapping[str, Route],
        token: str | None,
        log: Log,
        timeout_s: float = _TIMEOUT_S,
    ) -> None:
        self.sock = sock
        self.log = log
        self.timeout_s = timeout_s
        self._loop = loop
        self._routes = routes
        self._token = token.encode() if token else None
        self._serving = False
        self._watching = False  # the loop watches the socket for connections
        self._backoff = False  # after an accept error (e.g. out of fds), a pause
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._evicting = 0  # connections told to give up their slot, not closed yet
        self._active = 0
        self._polls = 0
        #: Connections that gave up their slot to a newer one (a counter, for /metrics).
        self.evicted = 0

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def active(self) -> int:
        """Requests being handled right now (from their first byte to their answer sent)."""
        return self._active

    @property
    def polls(self) -> int:
        """Long polls waiting right now."""
        return self._polls

    @property
    def connections(self) -> int:
        """Connections holding a slot (those giving theirs up left out)."""
        return len(self._connections) - self._evicting

    def start(self) -> None:
        """Accept connections (again, after a switch that did not end in a re-exec)."""
        self._serving = True
        self.sock.setblocking(False)
        self._watch()

    def stop_serving(self) -> None:
        """Stop accepting; the socket stays open and listening (a re-exec hands it over), so
        new connections wait in its backlog for whoever serves it next. Requests already
        received are still answered, the long polls at once."""
        self._serving = False
        self._watch()
        for connection in self._connections.values():
            if connection.cut is not None and not connection.cut.done():
                connection.cut.set_result("stopping")

    # Connections and their slots.

    def _watch(self) -> None:
        want = self._serving and not self._backoff and self._room()
        if want == self._watching:
            return
        self._watching = want
        if want:
            self._loop.add_reader(self.sock.fileno(), self._accept)
        else:
            # Also cancels a callback already due, so nothing is accepted after this.
            self._loop.remove_reader(self.sock.fileno())

    def _room(self) -> bool:
        """A new connection can be served: a slot is free, or one can be freed."""
        return self.connections < _MAX_CONNECTIONS or self._victim() is not None

    def _victim(self) -> _Connection | None:
        """The connection to give up its slot: one lingering after its answer, else the
        oldest; never an authenticated POST before its answer, never one already giving its
        slot up."""
        candidates = [
            c
            for c in self._connections.values()
            if not c.evicted and (not c.privileged or c.phase == _LINGERING)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda c: (c.phase != _LINGERING, c.since))

    def _evict(self, victim: _Connection) -> None:
        victim.evicted = True
        self._evicting += 1
        self.evicted += 1
        self.log.throttled("warning", "admin_full", max=_MAX_CONNECTIONS, evicted=self.evicted)
        if victim.cut is not None and not victim.cut.done():
            victim.cut.set_result("evicted")  # a long poll answers now
        elif victim.task is not None:
            victim.task.cancel()  # closed without an answer: it had not asked yet, or has one

    def _accept(self) -> None:
        for _ in range(16):  # a burst at a time; the rest at the next turn of the loop
            if not self._watching:
                return
            if self.connections >= _MAX_CONNECTIONS:
                victim = self._victim()
                if victim is None:
                    self._watch()
                    return  # every slot serves control: the rest wait in the backlog
            else:
                victim = None
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:  # e.g. out of file descriptors: retry shortly
                self.log.throttled("error", "admin_accept_failed", error=repr(e))
                self._backoff = True
                self._watch()
                self._loop.call_later(0.1, self._resume)
                return
            if victim is not None:
                self._evict(victim)
            self._serve(conn, peer)

    def _serve(self, conn: socket.socket, peer: Any) -> None:
        conn.setblocking(False)
        connection = _Connection(self._loop.time())
        task = self._loop.create_task(self._connection(conn, peer, connection))
        connection.task = task
        self._connections[task] = connection
        task.add_done_callback(self._closed)
        self._watch()

    def _resume(self) -> None:
        self._backoff = False
        self._watch()

    def _closed(self, task: asyncio.Task[None]) -> None:
        connection = self._connections.pop(task, None)
        if connection is not None and connection.evicted:
            self._evicting -= 1
        self._watch()

    async def _connection(self, conn: socket.socket, peer: Any, connection: _Connection) -> None:
        loop = self._loop
        stream = _Stream(loop, conn)
        counted = False
        try:
            try:
                async with asyncio.timeout(self.timeout_s):
                    if not await stream.receive():
                        return  # connected and hung up without a word
                    self._active += 1
                    counted = True
                    method, target, headers = await stream.request()
                    await stream.discard_body(headers)
                response = await self._respond(connection, conn, method, target, headers)
            except _Refused as e:
                response = _encode(e.reply)
            except TimeoutError:
                if not counted:
                    return  # never said anything
                response = _encode(Reply(408, {"error": "request timeout"}))
            connection.phase = _SENDING
            async with asyncio.timeout(self.timeout_s):
                await loop.sock_sendall(conn, response)
            self._active -= 1
            counted = False
            if not connection.evicted:
                connection.phase = _LINGERING
                await self._linger(conn)
        except (TimeoutError, OSError):
            pass  # the client does not read its answer, or has gone
        except Exception as e:
            self.log.throttled("error", "admin_error", client=str(peer), error=repr(e))
        finally:
            if counted:
                self._active -= 1
            conn.close()

    async def _linger(self, conn: socket.socket) -> None:
        """Half-close, then read until the client closes too (bounded): closing a socket with
        unread input resets the connection, and the client could lose its answer."""
        drained = 0
        try:
            conn.shutdown(socket.SHUT_WR)
            async with asyncio.timeout(_LINGER_S):
                while drained < _LINGER_MAX:
                    data = await self._loop.sock_recv(conn, _CHUNK)
                    if not data:
                        return
                    drained += len(data)
        except (OSError, TimeoutError):
            pass  # reset, or still sending: it has its answer anyway

    # Requests.

    async def _respond(
        self,
        connection: _Connection,
        conn: socket.socket,
        method: str,
        target: str,
        headers: Mapping[str, str],
    ) -> bytes:
        if method not in _METHODS:
            return _encode(Reply(501, {"error": "not implemented"}))
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return _encode(Reply(404, {"error": "not found"}))
        if method != route.method:
            return _encode(Reply(405, {"error": "method not allowed", "allowed": route.method}))
        if method == "POST":
            if not self._authorized(headers.get("authorization")):
                return _encode(Reply(401, {"error": "unauthorized"}))
            connection.privileged = not connection.evicted  # control: never gives its slot up
        action = route.action
        try:
            if route.query:
                # Imported here, at the first such call: not on the startup path.
                from urllib.parse import parse_qs, urlsplit

                params = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
                action = functools.partial(route.action, params)
            if route.poll:
                reply = await self._poll(connection, conn, action, route)
            elif route.blocking:
                reply = await self._blocking(connection, action, route, target)
            else:
                reply = action()
            return _encode(reply)
        except Exception as e:
            self.log.error("admin_action_failed", path=target, error=repr(e))
            return _encode(Reply(500, {"error": "internal error"}))

    async def _blocking(
        self, connection: _Connection, action: Callable[[], Reply], route: Route, target: str
    ) -> Reply:
        """A blocking action, in a thread, answered 503 past its bound (the thread ends on its
        own: a blocking action bounds its own waits)."""
        connection.phase = _ACTING
        bound = route.timeout_s if route.timeout_s is not None else self.timeout_s
        try:
            async with asyncio.timeout(bound):
                return await self._in_thread(action)
        except TimeoutError:
            self.log.warning("admin_action_timeout", path=target, timeout_s=bound)
            return Reply(503, {"error": "action timed out"})

    async def _poll(
        self,
        connection: _Connection,
        conn: socket.socket,
        action: Callable[[asyncio.Future[str]], Awaitable[Reply]],
        route: Route,
    ) -> Reply:
        """A long poll, on the loop: cut (answered now) when its bound is up, its client hangs
        up, or the server needs its slot or stops serving."""
        loop = self._loop
        cut: asyncio.Future[str] = loop.create_future()
        bound = route.timeout_s if route.timeout_s is not None else _POLL_MAX_S

        def end(why: str) -> None:
            if not cut.done():
                cut.set_result(why)

        if connection.evicted or not self._serving:
            end("evicted" if connection.evicted else "stopping")
        timer = loop.call_later(bound, end, "timeout")
        gone = loop.create_task(self._hung_up(conn))
        gone.add_done_callback(lambda _: end("gone"))
        connection.phase, connection.cut = _POLLING, cut
        self._polls += 1
        try:
            # A poll that ignored its cut would still end here.
            async with asyncio.timeout(bound + 1.0):
                return await action(cut)
        finally:
            self._polls -= 1
            connection.cut = None
            timer.cancel()
            end("done")
            gone.cancel()
            # Its read is off the socket before anything else reads it (the linger).
            await asyncio.wait([gone])

    async def _hung_up(self, conn: socket.socket) -> None:
        """Returns when the client hangs up (or resets); what it sends meanwhile is dropped."""
        with contextlib.suppress(OSError):
            while await self._loop.sock_recv(conn, _CHUNK):
                pass

    def _authorized(self, authorization: str | None) -> bool:
        if self._token is None or not authorization:
            return False  # no token configured: nobody may mutate (fail closed)
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def _in_thread(self, action: Callable[[], Reply]) -> asyncio.Future[Reply]:
        """Run `action` in a daemon thread (it must neither block the loop nor hold up the
        process's exit, as a thread of the default executor would)."""
        loop = self._loop
        future: asyncio.Future[Reply] = loop.create_future()

        def settle(reply: Reply | None, error: Exception | None) -> None:
            if future.done():
                return  # the connection is gone, or the action's time was up
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(reply)  # type: ignore[arg-type]

        def run() -> None:
            try:
                outcome: tuple[Reply | None, Exception | None] = (action(), None)
            except Exception as e:
                outcome = (None, e)
            with contextlib.suppress(RuntimeError):  # the loop is closed: the router stops
                loop.call_soon_threadsafe(settle, *outcome)

        threading.Thread(target=run, name="smars-admin-action", daemon=True).start()
        return future
