"""The admin HTTP API (health, version, metrics and the token-protected mutating calls): a small
HTTP/1.1 server on the router's own event loop, one request per connection. Actions run on the
loop, so they read a consistent snapshot and never race the router; only a long poll waits, in a
thread of its own.

Written for startup time: every release switch starts a new process, and the standard library's
http.server alone would import email, html, mimetypes, http.client and socketserver."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .log import Log

__all__ = ["AdminServer", "Reply", "Route"]

_MAX_HEAD = 16384  # request line and headers
_MAX_BODY = 65536  # bodies are read and ignored; a larger one is refused (413)
_TIMEOUT_S = 5.0  # to receive a whole request, and again to send the answer
_MAX_CONNECTIONS = 64  # beyond this, new connections wait in the backlog
_LINGER_S = 1.0  # after answering, reading what the client still sends, so it is not reset
_LINGER_MAX = 1 << 20
_CHUNK = 65536

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
    action: Callable[..., Reply]  # runs on the event loop, unless `blocking`
    #: The action takes the query parameters (a dict of the first value of each).
    query: bool = False
    #: The action may wait (a long poll): it runs in a thread of its own, never on the loop.
    blocking: bool = False


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
        size = int(length)
        if size > _MAX_BODY:
            raise _Refused(413, f"request body over {_MAX_BODY} bytes")
        if size > len(self.buf) and headers.get("expect", "").lower() == "100-continue":
            await self._loop.sock_sendall(self._sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        await self._skip(size)

    async def _discard_chunks(self) -> None:
        total = 0
        while True:
            size_field = (await self._line()).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise _Refused(400, "bad chunk size") from None
            if size < 0:
                raise _Refused(400, "bad chunk size")
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
    Everything but the long polls' threads runs on the loop: start and stop_serving too."""

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
        self._connections: set[asyncio.Task[None]] = set()
        self._active = 0

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def active(self) -> int:
        """Requests being handled right now (from their first byte to their answer sent)."""
        return self._active

    def start(self) -> None:
        """Accept connections (again, after a switch that did not end in a re-exec)."""
        self._serving = True
        self.sock.setblocking(False)
        self._watch()

    def stop_serving(self) -> None:
        """Stop accepting; the socket stays open and listening (a re-exec hands it over), so
        new connections wait in its backlog for whoever serves it next. Requests already
        received are still answered."""
        self._serving = False
        self._watch()

    # Connections.

    def _watch(self) -> None:
        want = self._serving and not self._backoff and len(self._connections) < _MAX_CONNECTIONS
        if want == self._watching:
            return
        self._watching = want
        if want:
            self._loop.add_reader(self.sock.fileno(), self._accept)
        else:
            # Also cancels a callback already due, so nothing is accepted after this.
            self._loop.remove_reader(self.sock.fileno())

    def _accept(self) -> None:
        for _ in range(16):  # a burst at a time; the rest at the next turn of the loop
            if not self._watching:
                return
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
            conn.setblocking(False)
            task = self._loop.create_task(self._connection(conn, peer))
            self._connections.add(task)
            task.add_done_callback(self._closed)
            self._watch()

    def _resume(self) -> None:
        self._backoff = False
        self._watch()

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._watch()

    async def _connection(self, conn: socket.socket, peer: Any) -> None:
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
                response = await self._respond(method, target, headers)
            except _Refused as e:
                response = _encode(e.reply)
            except TimeoutError:
                if not counted:
                    return  # never said anything
                response = _encode(Reply(408, {"error": "request timeout"}))
            async with asyncio.timeout(self.timeout_s):
                await loop.sock_sendall(conn, response)
            self._active -= 1
            counted = False
            await self._linger(conn)
        except TimeoutError:
            pass  # the client does not read its answer
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

    async def _respond(self, method: str, target: str, headers: Mapping[str, str]) -> bytes:
        if method not in _METHODS:
            return _encode(Reply(501, {"error": "not implemented"}))
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return _encode(Reply(404, {"error": "not found"}))
        if method != route.method:
            return _encode(Reply(405, {"error": "method not allowed", "allowed": route.method}))
        if method == "POST" and not self._authorized(headers.get("authorization")):
            return _encode(Reply(401, {"error": "unauthorized"}))
        action = route.action
        try:
            if route.query:
                # Imported here, at the first such call: not on the startup path.
                from urllib.parse import parse_qs, urlsplit

                params = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
                action = functools.partial(route.action, params)
            reply = await self._in_thread(action) if route.blocking else action()
            return _encode(reply)
        except Exception as e:
            self.log.error("admin_action_failed", path=target, error=repr(e))
            return _encode(Reply(500, {"error": "internal error"}))

    def _authorized(self, authorization: str | None) -> bool:
        if self._token is None or not authorization:
            return False  # no token configured: nobody may mutate (fail closed)
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def _in_thread(self, action: Callable[[], Reply]) -> asyncio.Future[Reply]:
        """Run `action` in a daemon thread (a long poll must neither block the loop nor hold
        up the process's exit, as a thread of the default executor would)."""
        loop = self._loop
        future: asyncio.Future[Reply] = loop.create_future()

        def settle(reply: Reply | None, error: Exception | None) -> None:
            if future.done():
                return  # the connection is gone
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

        threading.Thread(target=run, name="smars-admin-poll", daemon=True).start()
        return future
