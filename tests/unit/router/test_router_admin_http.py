"""The admin API's HTTP server (smars.admin) at its edges: in process on an event loop of its own
for the protocol (malformed and oversized requests, slow clients, auth, query parameters, long
polls, stop_serving keeping the socket), then in the real router."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from router_fixtures import TOKEN, point
from smars.admin import AdminServer, Reply, Route
from smars.log import Log
from smars.release import tree_hash

pytestmark = pytest.mark.timeout(60)


class Harness:
    """An AdminServer on 127.0.0.1 served by an event loop in a thread."""

    def __init__(self, routes: dict[str, Route], token: str | None, timeout_s: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.out = io.StringIO()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = AdminServer(
            sock=self.sock,
            loop=self.loop,
            routes=routes,
            token=token,
            log=Log("t", stream=self.out),
            timeout_s=timeout_s,
        )
        self.call(self.server.start)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the loop (as the router does) and return its result."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except Exception as e:
                done.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return done.result(5)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def close(self) -> None:
        self.call(self.server.stop_serving)

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()
        self.sock.close()


class Actions:
    def __init__(self) -> None:
        self.released = threading.Event()
        self.kills = 0

    def routes(self) -> dict[str, Route]:
        return {
            "/health": Route("GET", lambda: Reply(200, {"status": "ok"})),
            "/metrics": Route("GET", lambda: Reply(200, "smars_up 1\n")),
            "/kill": Route("POST", self.kill),
            "/echo": Route("GET", lambda query: Reply(200, query), query=True),
            "/wait": Route("GET", self.wait, query=True, blocking=True),
            "/boom": Route("GET", self.boom),
        }

    def kill(self) -> Reply:
        self.kills += 1
        return Reply(200, {"trading": "killed"})

    def wait(self, query: dict[str, str]) -> Reply:
        return Reply(200, {"released": self.released.wait(float(query.get("wait", "0")))})

    def boom(self) -> Reply:
        raise RuntimeError("boom")


@pytest.fixture
def actions() -> Actions:
    return Actions()


@pytest.fixture
def make(actions: Actions) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def start(token: str | None = "t0k", timeout_s: float = 5.0) -> Harness:
        made.append(Harness(actions.routes(), token, timeout_s))
        return made[-1]

    yield start
    for harness in made:
        harness.close()


@pytest.fixture
def admin(make: Callable[..., Harness]) -> Harness:
    return make()


def request(
    port: int,
    method: str,
    path: str,
    token: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """As the clients (urllib) do; returns the status, the headers (lower-case) and the body."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=data, headers=headers or {}
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            status, head, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, head, body = e.code, e.headers, e.read()
    return status, {k.lower(): v for k, v in head.items()}, body


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` as it is, and read the answer up to the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


# The protocol.


def test_json_answers_with_their_headers(admin: Harness):
    status, head, body = request(admin.port, "GET", "/health")
    assert (status, body) == (200, b'{"status":"ok"}\n')
    assert head["content-type"] == "application/json"
    assert head["content-length"] == str(len(body))
    assert head["connection"] == "close"
    assert head["server"] == "smars-admin"
    assert head["date"].endswith(" GMT")


def test_metrics_are_prometheus_text(admin: Harness):
    status, head, body = request(admin.port, "GET", "/metrics")
    assert (status, body) == (200, b"smars_up 1\n")
    assert head["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_unknown_paths_wrong_methods_and_unknown_methods(admin: Harness):
    assert request(admin.port, "GET", "/nowhere")[::2] == (404, b'{"error":"not found"}\n')
    status, head, body = request(admin.port, "GET", "/kill")
    assert status == 405
    assert json.loads(body) == {"error": "method not allowed", "allowed": "POST"}
    assert head["allow"] == "POST"
    assert request(admin.port, "DELETE", "/health")[0] == 405
    assert parse(raw(admin.port, b"BREW /health HTTP/1.1\r\n\r\n"))[0] == 501


def test_a_post_needs_the_bearer_token(admin: Harness, actions: Actions):
    unauthorized = (401, b'{"error":"unauthorized"}\n')
    assert request(admin.port, "POST", "/kill", data=b"")[::2] == unauthorized
    assert request(admin.port, "POST", "/kill", token="wrong", data=b"")[::2] == unauthorized
    basic = {"Authorization": "Basic dDBrOg=="}
    assert request(admin.port, "POST", "/kill", data=b"", headers=basic)[0] == 401
    assert actions.kills == 0
    assert request(admin.port, "POST", "/kill", token="t0k", data=b"{}")[0] == 200
    lower = {"Authorization": "bearer  t0k "}
    assert request(admin.port, "POST", "/kill", data=b"", headers=lower)[0] == 200
    assert actions.kills == 2


def test_without_a_configured_token_every_post_is_refused(make: Callable[..., Harness]):
    admin = make(token=None)
    assert request(admin.port, "POST", "/kill", token="t0k", data=b"")[0] == 401
    assert request(admin.port, "POST", "/kill", token="", data=b"")[0] == 401


def test_query_parameters_first_value_decoded(admin: Harness):
    status, _, body = request(admin.port, "GET", "/echo?a=1&a=2&b=x%20y&c=+&empty=")
    assert status == 200
    assert json.loads(body) == {"a": "1", "b": "x y", "c": " "}


def test_malformed_requests_are_400_and_the_server_keeps_serving(admin: Harness):
    for garbage in (
        b"garbage\r\n\r\n",
        b"GET /health\r\n\r\n",
        b"GET /health HTTP/1.1 extra\r\n\r\n",
        b"GET /health FTP/1.0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET /health HTTP/1.1\r\n folded: line\r\n\r\n",
        b"GET /health HTTP/1.1\r\nName : value\r\n\r\n",
        b"POST /kill HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /kill HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n",
        b"POST /kill HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /kill HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x00\xff\xfe\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",  # then EOF
    ):
        with socket.create_connection(("127.0.0.1", admin.port), timeout=5) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        assert parse(answer)[0] == 400, garbage
    assert parse(raw(admin.port, b"GET /health HTTP/2.0\r\n\r\n"))[0] == 505
    assert request(admin.port, "GET", "/health")[0] == 200


def test_lenient_where_http_allows_it(admin: Harness):
    assert parse(raw(admin.port, b"\r\nGET /health HTTP/1.0\n\n")) == (200, {"status": "ok"})
    assert parse(raw(admin.port, b"GET /health HTTP/1.1\r\nX-Empty:\r\n\r\n"))[0] == 200


def test_bodies_are_read_and_ignored_up_to_64_kib(admin: Harness, actions: Actions):
    assert request(admin.port, "POST", "/kill", token="t0k", data=b"x" * 65536)[0] == 200
    status, _, body = request(admin.port, "POST", "/kill", token="t0k", data=b"x" * 200_000)
    assert status == 413
    assert json.loads(body) == {"error": "request body over 65536 bytes"}
    assert actions.kills == 1
    chunked = (
        b"POST /kill HTTP/1.1\r\nAuthorization: Bearer t0k\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    assert parse(raw(admin.port, chunked))[0] == 200
    huge = b"10000\r\n" + b"x" * 65536 + b"\r\n1\r\nx\r\n0\r\n\r\n"
    assert parse(raw(admin.port, chunked.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + huge))[0] == 413
    assert actions.kills == 2


def test_expect_100_continue(admin: Harness):
    head = (
        b"POST /kill HTTP/1.1\r\nAuthorization: Bearer t0k\r\nContent-Length: 4\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", admin.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert parse(answer)[0] == 200


def test_an_oversized_header_is_refused(admin: Harness):
    big = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert parse(raw(admin.port, big))[0] == 431
    line = b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\n\r\n"
    assert parse(raw(admin.port, line))[0] == 431


def test_a_slow_client_is_timed_out(make: Callable[..., Harness]):
    admin = make(timeout_s=0.3)
    started = time.monotonic()
    assert parse(raw(admin.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"))[0] == 408
    with socket.create_connection(("127.0.0.1", admin.port), timeout=5) as sock:
        assert sock.recv(1) == b""  # connected and silent: closed without a word
    assert time.monotonic() - started < 3
    assert admin.server.active == 0
    assert request(admin.port, "GET", "/health")[0] == 200


def test_a_failing_action_is_500_and_logged(admin: Harness):
    assert request(admin.port, "GET", "/boom")[::2] == (500, b'{"error":"internal error"}\n')
    event = admin.events()[-1]
    assert event["event"] == "admin_action_failed"
    assert event["path"] == "/boom"
    assert "boom" in event["error"]


def test_a_long_poll_waits_off_the_loop_and_counts_as_active(admin: Harness, actions: Actions):
    result: dict[str, Any] = {}
    poll = threading.Thread(
        target=lambda: result.update(answer=request(admin.port, "GET", "/wait?wait=10"))
    )
    poll.start()
    deadline = time.monotonic() + 5
    while admin.server.active != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Answered while the poll still waits (it cannot end before `released`): off the loop.
    for _ in range(5):
        assert request(admin.port, "GET", "/health")[0] == 200
    assert poll.is_alive()
    actions.released.set()
    poll.join(5)
    status, _, body = result["answer"]
    assert (status, json.loads(body)) == (200, {"released": True})
    assert admin.server.active == 0


def test_stop_serving_keeps_the_socket_listening_for_the_next_start(admin: Harness):
    admin.call(admin.server.stop_serving)
    with socket.create_connection(("127.0.0.1", admin.port), timeout=0.5) as sock:
        # Accepted by the kernel (the backlog), answered by nobody while stopped.
        sock.sendall(b"GET /health HTTP/1.1\r\n\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(5)
        admin.call(admin.server.start)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert parse(answer) == (200, {"status": "ok"})
    admin.call(admin.server.start)  # starting twice is harmless
    assert request(admin.port, "GET", "/health")[0] == 200


def test_a_request_in_flight_is_answered_after_stop_serving(admin: Harness):
    with socket.create_connection(("127.0.0.1", admin.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        deadline = time.monotonic() + 5
        while admin.server.active != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        admin.call(admin.server.stop_serving)
        sock.sendall(b"\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert parse(answer) == (200, {"status": "ok"})
    assert admin.server.active == 0


def test_many_connections_at_once(admin: Harness):
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda _: request(admin.port, "GET", "/health")[0], range(200)))
    assert statuses == [200] * 200


# In the real router.


def test_the_router_answers_a_long_poll_without_holding_up_the_rest(router_factory):
    router = router_factory()
    tree = "ab" * 32
    result: dict[str, Any] = {}
    poll = threading.Thread(
        target=lambda: result.update(
            answer=router.admin("GET", f"/switch/armed?tree={tree}&wait=8")
        )
    )
    poll.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert router.admin("GET", "/health")[0] == 200
    assert router.admin("GET", "/version")[0] == 200
    assert time.monotonic() - started < 1
    assert poll.is_alive()
    assert router.admin("POST", f"/switch/arm?tree={tree}", token=TOKEN) == (
        200,
        {"armed": tree, "standby": None},  # no routerd here: no standby
    )
    poll.join(5)
    status, body = result["answer"]
    assert (status, body["ready"], body["armed"]) == (200, True, tree)
    assert router.admin("GET", "/switch/armed?tree=nope&wait=0")[1]["ready"] is False
    assert router.admin("GET", "/switch/armed?wait=x")[0] == 400


def test_the_router_survives_garbage_on_its_admin_port(router_factory):
    router = router_factory()
    assert parse(raw(router.admin_port, b"\x16\x03\x01garbage\r\n\r\n"))[0] == 400
    with socket.create_connection(("127.0.0.1", router.admin_port), timeout=5):
        pass  # connected and gone
    status, head, _ = request(router.admin_port, "GET", "/metrics")
    assert (status, head["content-type"]) == (200, "text/plain; version=0.0.4; charset=utf-8")


def test_an_admin_request_made_during_a_switch_is_answered_by_the_new_process(
    router_factory, releases
):
    router = router_factory("7.1.0")
    point(router.current, releases["8.0.1"])
    since = len(router.events)
    router.signal(signal.SIGUSR2)
    router.wait_event("switch_exec", since=since)
    # The old process accepts nothing more: this waits in the kept backlog for the new one.
    status, version = router.admin("GET", "/version")
    assert (status, version["release"]) == (200, "8.0.1")
    assert version["pid"] == router.proc.pid


def test_a_long_poll_for_running_a_tree_waits_out_the_arming_and_answers_once_it_runs(
    router_factory, releases
):
    """`running=1`: ready only once the router runs the tree, not when it is merely armed
    for it. The poll held by the old process answers when the switch stops it; asked again,
    the new process answers at once."""
    router = router_factory("7.1.0")
    tree = tree_hash(releases["8.0.1"])
    assert router.admin("POST", f"/switch/arm?tree={tree}", token=TOKEN)[0] == 200
    assert router.admin("GET", f"/switch/armed?tree={tree}&wait=0")[1]["ready"] is True
    status, body = router.admin("GET", f"/switch/armed?tree={tree}&running=1&wait=0")
    assert (status, body["ready"], body["armed"]) == (200, False, tree)
    assert router.admin("GET", f"/switch/armed?tree={tree}&running=x")[0] == 400
    result: dict[str, Any] = {}
    poll = threading.Thread(
        target=lambda: result.update(
            answer=router.admin("GET", f"/switch/armed?tree={tree}&running=1&wait=10")
        )
    )
    poll.start()
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    poll.join(30)
    assert not poll.is_alive()
    status, body = router.admin("GET", f"/switch/armed?tree={tree}&running=1&wait=10")
    assert (status, body["ready"], body["tree"]) == (200, True, tree)


def _smarsctl() -> Any:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"
    spec = importlib.util.spec_from_file_location("smarsctl_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smarsctl_asks_the_real_router_over_its_own_socket_client(router_factory, releases):
    """smarsctl's HTTP client (a socket, not urllib) against the router's admin server: a GET,
    an authenticated POST, a refusal, a long poll that waits, and one answered at once."""
    ctl = _smarsctl()
    router = router_factory("7.1.0")
    url = f"http://127.0.0.1:{router.admin_port}"
    status, version = ctl.request("GET", url + "/version", 5)
    assert (status, version["release"]) == (200, "7.1.0")
    status, body = ctl.request("POST", url + "/intake/pause", 5, TOKEN)
    assert (status, body["intake"]) == (200, "paused")
    assert ctl.request("POST", url + "/intake/resume", 5, "wrong")[0] == 401
    tree = tree_hash(releases["7.1.0"])
    started = time.monotonic()
    status, body = ctl.request("GET", f"{url}/switch/armed?tree={'ab' * 32}&wait=0.50", 5)
    assert (status, body["ready"]) == (200, False)
    assert time.monotonic() - started >= 0.45
    status, body = ctl.request("GET", f"{url}/switch/armed?tree={tree}&running=1&wait=5", 10)
    assert (status, body["ready"], body["tree"]) == (200, True, tree)
    with pytest.raises(ctl.Unanswered):
        ctl.request("GET", "http://127.0.0.1:1/version", 2)
