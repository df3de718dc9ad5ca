"""Reading a fleet back: a router slow to answer (busy right after a deploy) is waited for and
asked again, not reported as an unknown release; one that never answers is reported with its
error; and only so many nodes are asked at once."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lab_fakes import FakeContainer

from toolkit.lab.engine import Engine
from toolkit.lab.status import ReadPolicy, node_status, read_fleet
from toolkit.settings import Settings

#: Short bounds, so a stalled answer costs the test a fraction of a second.
FAST = ReadPolicy(workers=4, timeout_s=0.3, attempts=3, max_pause_s=0.05)


class Router:
    """A router's admin API on 127.0.0.1: /version and /health, the first `stalls` requests
    answered only after `stall_s` (longer than FAST's bound)."""

    def __init__(self, stalls: int = 0, stall_s: float = 1.0) -> None:
        self.stalls = stalls
        self.stall_s = stall_s
        self.requests = 0
        self.lock = threading.Lock()
        router = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with router.lock:
                    router.requests += 1
                    stall = router.requests <= router.stalls
                if stall:
                    time.sleep(router.stall_s)
                body = json.dumps({"release": "8.0.0", "tree": "a" * 64, "trading": "active"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up on a stalled answer
                    self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def routers() -> Iterator[list[Router]]:
    made: list[Router] = []
    yield made
    for router in made:
        router.close()


def container(node: str, port: int) -> FakeContainer:
    return FakeContainer(
        name=f"lab-{node}",
        labels={"knight.node": node},
        attrs={"NetworkSettings": {"Ports": {"8001/tcp": [{"HostPort": str(port)}]}}},
    )


def status_of(port: int, policy: ReadPolicy = FAST):
    return node_status(Engine, Settings(), "token", container("smars-1", port), policy)


def test_a_router_slow_to_answer_is_asked_again_and_its_release_read(routers):
    routers.append(Router(stalls=2))
    st = status_of(routers[0].port)
    assert (st.release, st.healthy, st.error) == ("8.0.0", True, None)
    assert routers[0].requests == 4  # /version three times (two stalled), then /health


def test_with_one_attempt_the_same_router_is_reported_unknown(routers):
    routers.append(Router(stalls=1))
    st = status_of(routers[0].port, ReadPolicy(timeout_s=0.3, attempts=1))
    assert st.release is None and not st.healthy
    assert "did not answer" in st.error


def test_a_router_that_never_answers_is_reported_with_its_error_after_every_attempt(routers):
    routers.append(Router(stalls=100))
    started = time.monotonic()
    st = status_of(routers[0].port)
    assert st.release is None and "smars-1: admin API" in st.error
    assert routers[0].requests == FAST.attempts
    assert time.monotonic() - started < FAST.attempts * (FAST.timeout_s + FAST.max_pause_s) + 1


def test_a_fleet_is_read_in_order_with_at_most_workers_nodes_at_once():
    lock = threading.Lock()
    now = peak = 0

    def read(item: int) -> int:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.02)
        with lock:
            now -= 1
        return item * 10

    assert read_fleet(read, range(32), workers=4) == [i * 10 for i in range(32)]
    assert peak == 4
    assert read_fleet(read, [], workers=4) == []
