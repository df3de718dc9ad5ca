"""The admin API cannot be starved (docs/protocol.md, "Router admin HTTP", "Limits"): every number
in a query is finite and in range or the call is 400, every action is bounded in time, a long
poll ends when its client leaves, and the kill switch answers within a second while the API is
full of unauthenticated, silent and long-polling connections. First the server alone (smars.admin
on a loop of the test's), then the real router."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from router_fixtures import TOKEN, Router, wait_for
from smars.admin import Reply, Route
from test_router_admin_http import Harness, parse, raw, request

pytestmark = pytest.mark.timeout(120)

TREE = "ab" * 32
CAP = 64  # the admin API's connections served at once


def send_request(port: int, head: bytes, timeout: float = 30.0) -> socket.socket:
    """A connection that sent `head` (a whole request, or a part of one) and is left open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if head:
        sock.sendall(head)
    return sock


def answer_of(sock: socket.socket) -> tuple[int, Any]:
    return parse(b"".join(iter(lambda: sock.recv(65536), b"")))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


@contextlib.contextmanager
def connections(port: int, heads: list[bytes]) -> Iterator[list[socket.socket]]:
    socks = [send_request(port, head) for head in heads]
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


POLL = b"GET /switch/armed?tree=" + TREE.encode() + b"&wait=10 HTTP/1.1\r\nHost: x\r\n\r\n"
SILENT = b""
PARTIAL = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # never finished
KILL = b"POST /kill HTTP/1.1\r\nAuthorization: Bearer t0k\r\nContent-Length: 0\r\n\r\n"


# The server alone.


class Stuck:
    """A blocking action that never returns by itself (released by the test's teardown)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def action(self) -> Reply:
        self.release.wait(60)
        return Reply(200, {"late": True})


@pytest.fixture
def stuck() -> Iterator[Stuck]:
    action = Stuck()
    yield action
    action.release.set()


@pytest.fixture
def server(stuck: Stuck) -> Iterator[Harness]:
    kills: list[int] = []

    def kill() -> Reply:
        kills.append(1)
        return Reply(200, {"trading": "killed"})

    async def poll(query: dict[str, str], cut: Any) -> Reply:
        await cut  # answers only when the server cuts it short
        return Reply(200, {"ready": False})

    routes = {
        "/health": Route("GET", lambda: Reply(200, {"status": "ok"})),
        "/kill": Route("POST", kill),
        "/stuck": Route("GET", stuck.action, blocking=True, timeout_s=0.5),
        "/poll": Route("GET", poll, query=True, poll=True),
    }
    harness = Harness(routes, "t0k", timeout_s=5.0)
    yield harness
    harness.close()


def test_a_blocking_action_is_bounded_by_the_request_timeout(server: Harness):
    (status, _, body), took = timed(lambda: request(server.port, "GET", "/stuck"))
    assert (status, json.loads(body)) == (503, {"error": "action timed out"})
    assert 0.4 < took < 2


def test_silent_and_unfinished_connections_do_not_keep_control_out(server: Harness):
    heads = (
        [SILENT] * (CAP // 2) + [PARTIAL] * (CAP // 2) + [SILENT] * 20
    )  # the last in the backlog
    with connections(server.port, heads):
        wait_for(lambda: server.server.connections >= CAP, 5, "a full server")
        with send_request(server.port, KILL) as kill:
            (status, body), took = timed(lambda: answer_of(kill))
        assert (status, body) == (200, {"trading": "killed"})
        assert took < 1
        (status, _, _), took = timed(lambda: request(server.port, "GET", "/health"))
        assert (status, took < 1) == (200, True)


def test_a_long_poll_is_cut_when_its_client_leaves_and_when_the_server_needs_its_slot(
    server: Harness,
):
    poll = b"GET /poll HTTP/1.1\r\n\r\n"
    with connections(server.port, [poll] * 3) as socks:
        wait_for(lambda: server.server.polls == 3, 5, "three long polls")
        socks[0].close()
        wait_for(lambda: server.server.polls == 2, 2, "the poll of the client that left to end")
    wait_for(lambda: server.server.polls == 0, 2, "every poll to end")
    with connections(server.port, [poll] * CAP) as socks:
        wait_for(lambda: server.server.polls == CAP, 5, "a server full of long polls")
        with send_request(server.port, KILL) as kill:
            (status, _), took = timed(lambda: answer_of(kill))
        assert (status, took < 1) == (200, True)
        # The oldest poll gave up its slot, with the answer a poll gives when its time is up.
        assert answer_of(socks[0]) == (200, {"ready": False})


def test_stop_serving_answers_the_long_polls_at_once(server: Harness):
    with connections(server.port, [b"GET /poll HTTP/1.1\r\n\r\n"] * 2) as socks:
        wait_for(lambda: server.server.polls == 2, 5, "two long polls")
        server.call(server.server.stop_serving)
        for sock in socks:
            assert answer_of(sock) == (200, {"ready": False})
    server.call(server.server.start)


@pytest.mark.parametrize("size", [b"+5", b"0x5", b"0_5", b"-0", b"1" * 9, b""])
def test_a_chunk_size_is_hex_digits_only(server: Harness, size):
    chunked = (
        b"POST /kill HTTP/1.1\r\nAuthorization: Bearer t0k\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size
        + b"\r\nhello\r\n0\r\n\r\n"
    )
    assert parse(raw(server.port, chunked)) == (400, {"error": "bad chunk size"})


@pytest.mark.parametrize("length", [b"9" * 5000, b"0" * 5000 + b"4", b"99999999999999999999"])
def test_any_content_length_is_answered(server: Harness, length):
    head = b"POST /kill HTTP/1.1\r\nAuthorization: Bearer t0k\r\nContent-Length: " + length
    status, _ = parse(raw(server.port, head + b"\r\n\r\nbody"))
    assert status == (200 if length.endswith(b"4") else 413)


# The real router.


def armed(router: Router, wait: str, timeout: float = 3.0) -> tuple[int, Any]:
    head = f"GET /switch/armed?tree={TREE}&wait={wait} HTTP/1.1\r\n\r\n".encode()
    return parse(raw(router.admin_port, head, timeout=timeout))


@pytest.mark.parametrize(
    "wait",
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "infinity",
        "1e400",
        "-1",
        "-0.5",
        "10.5",
        "11",
        "1e9",
        "x",
        "5_0",
        "0x5",
    ],
)
def test_a_number_that_is_not_finite_or_out_of_range_is_400(router_factory, wait):
    router = router_factory()
    status, body = armed(router, wait)
    assert (status, body) == (400, {"error": "wait: expected 0 to 10 seconds"})


def test_the_waits_the_deploy_sends_are_accepted(router_factory):
    router = router_factory()
    assert armed(router, "0")[1]["ready"] is False
    assert armed(router, "0.00")[1]["ready"] is False
    (status, body), took = timed(lambda: armed(router, "0.25"))
    assert (status, body["ready"]) == (200, False)
    assert 0.2 < took < 2


def test_prepare_wait_is_0_or_1(router_factory):
    router = router_factory()
    for wait in ("2", "nan", "yes"):
        status, body = router.admin(
            "POST", f"/switch/prepare?tree={TREE}&release=8.0.1&wait={wait}", token=TOKEN
        )
        assert (status, body) == (400, {"error": "wait: expected 0 or 1"}), wait
    status, body = router.admin("POST", f"/switch/prepare?tree={TREE}&wait=0", token=TOKEN)
    assert (status, body) == (200, {"tree": TREE, "standby": None})


def test_long_polls_end_with_their_clients_and_leave_nothing_spinning(router_factory):
    router = router_factory()
    with connections(router.admin_port, [POLL] * 4):
        wait_for(lambda: router.metrics().get("smars_admin_polls") == 4, 5, "four long polls")
    wait_for(lambda: router.metrics()["smars_admin_polls"] == 0, 2, "the polls to end")
    assert router.proc is not None
    with open(f"/proc/{router.proc.pid}/status") as status:
        threads = status.read().split("Threads:")[1].split()[0]
    assert threads == "1"  # no thread of a poll left behind: they wait on the event loop


def test_kill_and_resume_answer_within_a_second_while_the_api_is_full(router_factory):
    router = router_factory()
    heads = [POLL] * (CAP // 2) + [SILENT] * 16 + [PARTIAL] * 16 + [POLL] * 32  # more than CAP
    with connections(router.admin_port, heads) as socks:
        wait_for(lambda: router.metrics()["smars_admin_polls"] >= CAP // 2, 5, "the polls")
        for path, trading in (("/kill", "killed"), ("/resume", "active")):
            (status, body), took = timed(lambda p=path: router.admin("POST", p, token=TOKEN))
            assert (status, body["trading"]) == (200, trading)
            assert took < 1, path
        assert router.admin("GET", "/health")[0] == 200
        # The oldest polls gave up their slots, answered as a poll whose time is up.
        for sock in socks[:2]:
            status, body = answer_of(sock)
            assert (status, body["ready"], body["armed"]) == (200, False, None)
    evicted = router.metrics()["smars_admin_evicted_total"]
    assert evicted >= 2


def test_a_kill_answers_while_unauthenticated_clients_flood_the_api(router_factory):
    router = router_factory()
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                request(router.admin_port, "POST", "/kill", data=b"")  # 401s
                send_request(router.admin_port, PARTIAL, timeout=1).close()

    flooders = [threading.Thread(target=flood, daemon=True) for _ in range(8)]
    for t in flooders:
        t.start()
    try:
        with connections(router.admin_port, [POLL] * CAP):
            wait_for(lambda: router.metrics()["smars_admin_polls"] > 0, 5, "the polls")
            (status, body), took = timed(lambda: router.admin("POST", "/kill", token=TOKEN))
            assert (status, body["trading"], took < 1) == (200, "killed", True)
    finally:
        stop.set()
        for t in flooders:
            t.join(5)
    assert router.admin("GET", "/version")[1]["trading"] == "killed"
