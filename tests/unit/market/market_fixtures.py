"""Loopback helpers for the market tests: a scriptable fake router and a venue subprocess.

A module of its own name (not conftest) so `from market_fixtures import ...` can never pick up
another directory's conftest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROUTER_IMAGE = Path(__file__).resolve().parents[3] / "router_image"
TOKEN = "test-token"

Behaviour = Callable[[dict, int], list[dict]]


class FakeRouter(asyncio.Protocol):
    """Answers each order with whatever `behave(order, attempt)` returns (attempt counts from 1
    per id), in one write per read, like a real router would batch."""

    def __init__(self, state: RouterState) -> None:
        self.state = state
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.state.connections += 1
        self.state.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            order = json.loads(line)
            self.state.orders.append(order)
            attempt = self.state.attempts[order["id"]] = self.state.attempts.get(order["id"], 0) + 1
            out.extend(json.dumps(m) + "\n" for m in self.state.behave(order, attempt))
        if out:
            self.transport.write("".join(out).encode())


@dataclass
class RouterState:
    behave: Behaviour
    orders: list[dict] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    transports: list = field(default_factory=list)
    port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def fake_router(behave: Behaviour) -> AsyncIterator[RouterState]:
    state = RouterState(behave)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FakeRouter(state), "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for t in state.transports:
            t.close()


def ack_and_fill(order: dict, attempt: int) -> list[dict]:
    """A healthy router: ack, then one fill for the whole parent."""
    q = order["qty"]
    return [
        {"type": "ack", "id": order["id"]},
        {"type": "fill", "id": order["id"], "qty": q, "price": 20.01, "cum": q, "leaves": 0},
    ]


@dataclass
class VenueProcess:
    proc: subprocess.Popen
    port: int
    admin_port: int
    logs: queue.Queue
    listening: dict = field(default_factory=dict)  # the `listening` log event

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def wait_event(self, name: str, timeout: float = 10.0) -> dict:
        """The next log event called `name` (the others before it are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the venue never logged {name!r}"
            try:
                event = self.logs.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == name:
                return event

    def events(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self.logs.get_nowait())
            except queue.Empty:
                return out


#: The venue on loopback, on free ports (it logs the ones it got in its `listening` event).
VENUE_ARGV = [
    sys.executable,
    "-m",
    "market.venue",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--admin-port",
    "0",
]


def venue_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROUTER_IMAGE), env.get("PYTHONPATH", "")])
    env["VENUE_ADMIN_TOKEN"] = TOKEN
    env.pop("VENUE_HELLO_TOKEN", None)  # a venue takes any hello unless a test says otherwise
    return env


@pytest.fixture(scope="module")
def venue() -> Iterator[VenueProcess]:
    """`python3 -m market.venue` on free ports, found from its `listening` log event."""
    with running_venue("--cap", "1000") as v:
        yield v


@contextlib.contextmanager
def running_venue(*args: str, env: dict[str, str] | None = None) -> Iterator[VenueProcess]:
    """`python3 -m market.venue ARGS` on free ports, with `env` added to venue_env()."""
    proc = subprocess.Popen(
        [*VENUE_ARGV, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=venue_env() | (env or {}),
        text=True,
    )
    logs: queue.Queue = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            logs.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 10
    listening = None
    while listening is None and time.monotonic() < deadline:
        try:
            event = logs.get(timeout=0.2)
        except queue.Empty:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            continue
        if event["event"] == "listening":
            listening = event
    assert listening is not None, "the venue never logged `listening`"
    try:
        yield VenueProcess(proc, listening["port"], listening["admin_port"], logs, listening)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def loadgen_env() -> dict[str, str]:
    env = venue_env()
    del env["VENUE_ADMIN_TOKEN"]
    return env


class FakeTransport:
    """What a RouterConnection writes, and whether it closed the connection."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.out.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def answers(self) -> list[dict]:
        return [json.loads(line) for line in b"".join(self.out).splitlines()]


@contextlib.contextmanager
def venue_in_thread(venue: Any) -> Iterator[Any]:
    """A market.venue.Venue started on an event loop in a thread of this process (so a test can
    give it limits the command line does not take); closed at the end."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="venue-loop", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(venue.start(), loop).result(10)
        yield venue
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(venue.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
