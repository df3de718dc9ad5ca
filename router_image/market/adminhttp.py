"""The HTTP mechanics of the venue's admin API (docs/protocol.md, "Venue admin HTTP"); the routes
live with the venue (venue.py). One request per connection, HTTP/1.0 style, on a server whose
hostile or slow clients cost a bounded amount: at most `workers` requests are handled at once
(more connections wait in the listen backlog), a request must arrive whole within one deadline
(a client that sends nothing is just closed, one that sends part of a request gets 408), its
request line and headers are at most 16 KiB (431), its Content-Length is one plain decimal
number (else 400), and a body is read only up to 64 KiB (413). Error answers are JSON."""

from __future__ import annotations

import json
import queue
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from market.wire import log_event

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "REQUEST_TIMEOUT_S",
    "WORKERS",
    "WRITE_TIMEOUT_S",
    "AdminServer",
    "JSONHandler",
    "content_length",
]

REQUEST_TIMEOUT_S = 5.0
"""Time for a client to send its whole request, from the moment a worker takes its connection."""

WRITE_TIMEOUT_S = 30.0
"""Time for a client to take an answer (an /executions page is a few MB)."""

WORKERS = 16
"""Requests handled at once. A request holds its worker while it waits for the event loop."""

MAX_HEAD = 16 * 1024
"""Request line and headers, in bytes."""

MAX_BODY = 64 * 1024
"""Largest request body read."""

_LENGTH = re.compile(r"[0-9]{1,18}")  # a decimal number; 18 digits always fit an int64


def content_length(values: list[str] | None) -> int | None:
    """The request's Content-Length from every value sent (0 when none), or None when it is not
    one plain decimal number: negative, signed, empty, not a number, or several that differ."""
    if not values:
        return 0
    lengths = {v.strip() for v in values}
    if len(lengths) != 1:
        return None
    (text,) = lengths
    return int(text) if _LENGTH.fullmatch(text) else None


class _Expired(Exception):
    """The request did not arrive whole before its deadline (not a TimeoutError: the standard
    handler would swallow that one and close without an answer)."""


class _HeadTooLarge(Exception):
    """The request line and headers are over MAX_HEAD bytes."""


class _RequestReader:
    """The handler's rfile: reads the socket against one deadline for the whole request, so a
    client that trickles a byte at a time cannot hold a worker longer than the deadline, and
    counts the bytes of the head (everything read by readline) against MAX_HEAD."""

    def __init__(self, sock: socket.socket, deadline: float, max_head: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._head_left = max_head
        self._buf = b""
        self.received = False  # any byte at all: a silent client is closed without an answer

    def _fill(self) -> bool:
        """Read what the socket has, waiting until the deadline at most; False at end of stream."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _Expired
        self._sock.settimeout(left)
        try:
            chunk = self._sock.recv(4096)
        except TimeoutError:
            raise _Expired from None
        if chunk:
            self.received = True
            self._buf += chunk
        return bool(chunk)

    def readline(self, limit: int = -1) -> bytes:
        limit = self._head_left + 1 if limit < 0 else min(limit, self._head_left + 1)
        while True:
            cut = self._buf.find(b"\n", 0, limit)
            if cut >= 0:
                cut += 1
                break
            if len(self._buf) >= limit or not self._fill():
                cut = min(limit, len(self._buf))
                break
        line, self._buf = self._buf[:cut], self._buf[cut:]
        self._head_left -= len(line)
        if self._head_left < 0:
            raise _HeadTooLarge
        return line

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and self._fill():
            pass
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def close(self) -> None:
        self._buf = b""


class AdminServer(HTTPServer):
    """An HTTPServer served by a fixed pool of `workers` threads: while all are busy the accept
    loop waits, and new connections wait in the listen backlog."""

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[JSONHandler],
        workers: int = WORKERS,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__(address, handler)
        self.request_timeout = request_timeout
        self._slots = threading.Semaphore(
            workers
        )  # taken by the accept loop, given back by a worker
        self._jobs: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._closing = False
        self._workers = [
            threading.Thread(target=self._work, name="venue-admin-request", daemon=True)
            for _ in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.25):
            if self._closing:
                self.shutdown_request(request)
                return
        self._jobs.put((request, client_address))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            request, client_address = job
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away is its own business; anything else is a bug, logged."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            log_event("venue", "admin_error", "error", error=repr(exc))

    def shutdown(self) -> None:
        self._closing = True
        super().shutdown()

    def server_close(self) -> None:
        super().server_close()
        for _ in self._workers:
            self._jobs.put(None)


class JSONHandler(BaseHTTPRequestHandler):
    """Reads one request under AdminServer's bounds and answers JSON; subclasses add do_GET and
    do_POST and read a POST body with body()."""

    server: AdminServer
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket is read through _RequestReader only
        deadline = time.monotonic() + self.server.request_timeout
        self.rfile = _RequestReader(self.connection, deadline, MAX_HEAD)  # type: ignore[assignment]
        self.length = 0

    def handle(self) -> None:
        try:
            self.handle_one_request()
        except _Expired:
            if self.rfile.received:  # type: ignore[attr-defined]
                self._error(HTTPStatus.REQUEST_TIMEOUT, "request not received in time")
        except _HeadTooLarge:
            self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        length = content_length(self.headers.get_all("Content-Length"))
        if length is None:
            self._error(HTTPStatus.BAD_REQUEST, "Content-Length must be one decimal number")
            return False
        self.length = length
        return True

    def body(self) -> bytes | None:
        """The request body, or None (answered 413) when it is over MAX_BODY."""
        if self.length > MAX_BODY:
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return None
        return self.rfile.read(self.length)

    def _error(self, status: HTTPStatus, message: str) -> None:
        # Before the request line is read these are not set, and send_response needs them.
        if not hasattr(self, "request_version"):
            self.requestline = ""
            self.command = ""
        self.send_error(status, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error of the request's framing (the standard handler's own too: 501, 505, a bad
        request line...), as JSON, with a status line even when the request line was unreadable
        (the standard handler then takes the request for HTTP/0.9, which has none)."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.close_connection = True
        self.send_json(code, {"error": message or HTTPStatus(code).phrase})

    def send_response(self, code: int, message: str | None = None) -> None:
        # The request is read: from now on the socket only sends, with a bound of its own.
        self.connection.settimeout(WRITE_TIMEOUT_S)
        super().send_response(code, message)

    def send_body(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, obj: object) -> None:
        self.send_body(status, json.dumps(obj, separators=(",", ":")).encode())

    def log_message(self, format: str, *args: Any) -> None:
        """http.server logs every request on stderr; the venue logs lifecycle events only."""
