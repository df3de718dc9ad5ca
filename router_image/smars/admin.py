"""The admin HTTP API (health, version, metrics and the token-protected mutating calls) on a
standard-library threading HTTP server. Every handler runs its work on the event loop, so it
reads a consistent snapshot and never races the router; only a long poll waits in its own
request thread."""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .log import Log

__all__ = ["AdminServer", "Reply", "Route"]

_LOOP_TIMEOUT_S = 5.0
_MAX_BODY = 65536


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
    #: The action may wait (a long poll): it runs in the request's own thread, never on the loop.
    blocking: bool = False


class _Server(ThreadingHTTPServer):
    """An HTTP server on a socket that is already bound and listening (possibly inherited
    across a re-exec)."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, admin: AdminServer) -> None:
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.admin = admin

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.admin.log.throttled("error", "admin_error", client=str(client_address))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "smars-admin"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # logs are JSON on stdout; one line per request would only be noise

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        admin = self.server.admin
        with admin.tracking():
            self._discard_body()
            reply = admin.handle(method, self.path, self.headers.get("Authorization"))
            self._send(reply)

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= _MAX_BODY:
            self.rfile.read(length)  # bodies are not used; read so the client is not reset

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, str):
            data = reply.body.encode()
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        else:
            data = (json.dumps(reply.body, separators=(",", ":")) + "\n").encode()
            ctype = "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class AdminServer:
    """Routes requests to actions run on `loop`; POSTs need `Authorization: Bearer <token>`."""

    def __init__(
        self,
        *,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        routes: Mapping[str, Route],
        token: str | None,
        log: Log,
    ) -> None:
        self.sock = sock
        self.log = log
        self._loop = loop
        self._routes = routes
        self._token = token.encode() if token else None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def active(self) -> int:
        """Requests being handled right now."""
        return self._active

    def start(self) -> None:
        if self._httpd is not None:
            return  # already serving
        self.sock.setblocking(True)
        self._httpd = _Server(self.sock, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="smars-admin",
            daemon=True,
        )
        self._thread.start()

    def stop_serving(self) -> None:
        """Stop accepting (blocking, call it off the loop); the socket stays open, so new
        connections wait in its backlog for whoever serves it next."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd = None

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Count a request in flight, so a re-exec can wait for its answer to be written."""
        with self._active_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1

    def handle(self, method: str, target: str, authorization: str | None) -> Reply:
        """Runs in a handler thread."""
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return Reply(404, {"error": "not found"})
        if method != route.method:
            return Reply(405, {"error": "method not allowed", "allowed": route.method})
        if method == "POST" and not self._authorized(authorization):
            return Reply(401, {"error": "unauthorized"})
        action = route.action
        if route.query:
            params = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
            action = functools.partial(route.action, params)
        try:
            return action() if route.blocking else self._on_loop(action)
        except Exception as e:
            self.log.error("admin_action_failed", path=target, error=repr(e))
            return Reply(500, {"error": "internal error"})

    def _authorized(self, authorization: str | None) -> bool:
        if self._token is None or not authorization:
            return False  # no token configured: nobody may mutate (fail closed)
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def _on_loop(self, action: Callable[[], Reply]) -> Reply:
        async def run() -> Reply:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_LOOP_TIMEOUT_S)
