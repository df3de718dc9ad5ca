"""Loopback helpers for the router specifications: release trees assembled from
router_image/smars, a fake venue on 127.0.0.1, and the real router run as
`python3 -S -P -m smars` in a temp dir.

A module of its own name (not conftest) so `from router_fixtures import ...` can never pick up
another directory's conftest."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).resolve().parents[3] / "router_image" / "smars"
ROUTERD = SOURCE.parent / "routerd.py"
TOKEN = "lab-token"
ALL_STRATEGIES = ("sor", "rlp", "power_peg")


def make_release(
    root: Path, version: str, strategies: tuple[str, ...], flags: dict[str, str]
) -> Path:
    """A release tree as the release builder lays it out: smars/ with only the release's
    strategy modules, and release.json."""
    tree = root / version
    dropped = {f"{s}.py" for s in ALL_STRATEGIES if s not in strategies}
    shutil.copytree(
        SOURCE,
        tree / "smars",
        ignore=lambda _dir, names: [n for n in names if n == "__pycache__" or n in dropped],
    )
    doc = {"version": version, "strategies": list(strategies), "flags": flags}
    (tree / "release.json").write_text(json.dumps(doc, indent=2) + "\n")
    return tree


def point(link: Path, target: Path) -> None:
    """Flip a symlink atomically, as a deploy does."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


class FakeVenue:
    """Executes every child in full at 10.0 (or refuses all of them when `refuse` is set, or
    answers nothing while `hold` is set, or answers what `answer(child)` returns when set)."""

    def __init__(self) -> None:
        self.hellos: list[dict[str, Any]] = []
        self.children: list[dict[str, Any]] = []
        self.refuse: str | None = None
        self.hold = False
        self.answer: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
        self.sessions: list[_VenueSession] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _VenueSession(self), "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def release(self) -> None:
        """Answer (execute) every child held while `hold` was set."""

        def answer() -> None:
            for session in self.sessions:
                held, session.held = session.held, []
                session.execute(held)

        self.loop.call_soon_threadsafe(answer)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class _VenueSession(asyncio.Protocol):
    def __init__(self, venue: FakeVenue) -> None:
        self.venue = venue
        self.buffer = b""
        self.held: list[dict[str, Any]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.venue.sessions.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.venue.sessions.remove(self)

    def execute(self, children: list[dict[str, Any]]) -> None:
        out = [
            {"type": "exec", "id": c["id"], "parent": c["parent"], "qty": c["qty"], "price": 10.0}
            for c in children
        ]
        if out:
            self.transport.write(b"".join(json.dumps(m).encode() + b"\n" for m in out))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        out = []
        for line in lines:
            msg = json.loads(line)
            if msg["type"] == "hello":
                self.venue.hellos.append(msg)
                continue
            self.venue.children.append(msg)
            if self.venue.hold:
                self.held.append(msg)
                continue
            if self.venue.answer is not None:
                out += [json.dumps(m).encode() + b"\n" for m in self.venue.answer(msg)]
                continue
            if self.venue.refuse:
                reply = {"type": "reject", "id": msg["id"], "parent": msg["parent"]}
                reply["reason"] = self.venue.refuse
            else:
                reply = {"type": "exec", "id": msg["id"], "parent": msg["parent"]}
                reply.update(qty=msg["qty"], price=10.0)
            out.append(json.dumps(reply).encode() + b"\n")
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


class OrderClient:
    """A client of the order port speaking newline JSON."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")

    def send(self, message: dict[str, Any] | bytes) -> None:
        if isinstance(message, dict):
            message = json.dumps(message).encode() + b"\n"
        self.sock.sendall(message)

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline()
        assert line, "the router closed the connection"
        return json.loads(line)

    def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        messages = [self.receive()]
        while not done(messages[-1]):
            messages.append(self.receive())
        return messages

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def samples(text: str) -> dict[str, str]:
    """Prometheus text exposition -> {series: value text}, comments left out."""
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def finished(message: dict[str, Any]) -> bool:
    """The last message a parent order gets: rejected, cancelled, or filled in full."""
    return message["type"] in ("reject", "cancelled") or message.get("leaves") == 0


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def switch_twice_under_load(
    router: Router,
    releases: dict[str, Path],
    prefix: str,
    before_switch: Callable[[str], Any] = lambda _release: None,
) -> list[dict[str, Any]]:
    """The real load generator at 300 orders/s while the router switches to 8.0.1 and back to
    7.1.0 (`before_switch(release)` runs before each), with a hundred orders sent before each
    switch and after the last, however slow the machine; asserts that every order ended filled,
    any refused for retry during a switch having been sent again, and returns the `started`
    event of each new process."""
    from market.loadgen import Config, LoadGen, invariant_holds

    cfg = Config(
        targets=[f"127.0.0.1:{router.order_port}"], rate=300, duration=120, drain=15, prefix=prefix
    )
    gen = LoadGen(cfg)
    loops: list[asyncio.AbstractEventLoop] = []
    out: dict[str, Any] = {}

    async def load() -> dict[str, Any]:
        loops.append(asyncio.get_running_loop())
        return await gen.run()

    def sent_past(mark: int) -> int:
        wait_for(lambda: gen.sent >= mark + 100, what=f"{mark + 100} orders sent", timeout=30)
        return gen.sent

    runner = threading.Thread(target=lambda: out.update(asyncio.run(load())))
    runner.start()
    started = []
    try:
        mark = 0
        for release in ("8.0.1", "7.1.0"):
            mark = sent_past(mark)
            before_switch(release)
            since = len(router.events)
            point(router.current, releases[release])
            router.signal_router(signal.SIGUSR2)
            started.append(router.wait_event("started", since=since, release=release))
        sent_past(gen.sent)
    finally:
        wait_for(lambda: bool(loops), what="the load generator's loop")
        loops[0].call_soon_threadsafe(gen.end_sending)
        runner.join(30)
    assert not runner.is_alive()
    assert invariant_holds(out)
    assert out["unanswered"] == 0
    assert out["sent"] == out["filled"] >= 300
    assert out["per_target"][cfg.targets[0]]["connects"] == 3  # one reconnect per switch
    return started


def order(order_id: str, qty: int = 300, **fields: Any) -> dict[str, Any]:
    return {"type": "order", "id": order_id, "symbol": "KCG", "side": "buy", "qty": qty, **fields}


class Router:
    """The router as a subprocess, with its JSON log collected from stdout."""

    def __init__(
        self,
        home: Path,
        venue_port: int,
        supervised: bool = False,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.home = home
        self.supervised = supervised  # run under routerd, as in the lab image
        self.env = env or {}  # more environment for the router
        self.current = home / "current"
        self.config_path = home / "router.json"
        self.flags_path = home / "flags.json"
        config = {
            "node": "smars-t",
            "bind": "127.0.0.1",
            "order_port": 0,
            "admin_port": 0,
            "venue": f"127.0.0.1:{venue_port}",
            "flags_path": str(self.flags_path),
            "fleet_path": str(home / "fleet.json"),
            "guards_path": str(home / "guards.json"),
            "state_path": str(home / "state.json"),
            "pid_path": str(home / "router.pid"),
            "current_path": str(self.current),
            "pending_path": str(home / "switch.pending"),
            "drain_timeout_s": 0.5,
            **settings,
        }
        self.config_path.write_text(json.dumps(config))
        self.events: list[dict[str, Any]] = []
        self._seen = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None
        self.clients: list[OrderClient] = []

    def set_flags(self, **flags: tuple[bool, str]) -> None:
        doc = {"flags": {n: {"value": v, "meaning": m} for n, (v, m) in flags.items()}}
        self.flags_path.write_text(json.dumps(doc))

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.path.realpath(self.current))
        env["SMARS_ADMIN_TOKEN"] = TOKEN
        env.pop("SMARS_SUPERVISED", None)
        env.pop("SMARS_INHERIT_FDS", None)
        env.pop("SMARS_VENUE_TOKEN", None)
        # As routerd starts it: a release tree never gets bytecode written into it.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["SMARS_PYCACHE"] = str(self.home / "pycache")  # the router's own cache, not the host's
        env.update(self.env)
        tree = os.path.realpath(self.current)
        if self.supervised:  # `proc` is routerd then; the router is its child
            command = [sys.executable, "-S", "-P", str(ROUTERD), tree]
        else:
            command = [sys.executable, "-S", "-P", "-m", "smars"]
        self.proc = subprocess.Popen(
            [*command, "--config", str(self.config_path)],
            env=env,
            cwd=self.home,
            stdout=subprocess.PIPE,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        listening = self.wait_event("listening")
        self.order_port = listening["order_port"]
        self.admin_port = listening["admin_port"]

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"event": "unparsed", "line": raw.decode(errors="replace")}
            with self._seen:
                self.events.append(event)
                self._seen.notify_all()

    def wait_event(
        self, name: str, since: int = 0, timeout: float = 10.0, **match: Any
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                for event in self.events[since:]:
                    if event.get("event") == name and all(
                        event.get(k) == v for k, v in match.items()
                    ):
                        return event
                left = deadline - time.monotonic()
                assert left > 0, f"no {name} event in {timeout}s; log: {self.events[-10:]}"
                assert self.proc is not None
                assert self.proc.poll() is None, f"router exited; log: {self.events[-10:]}"
                self._seen.wait(min(left, 0.1))

    def admin(self, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin_port}{path}",
            method=method,
            data=b"" if method == "POST" else None,
        )
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        text = body.decode()
        return status, json.loads(text) if text.startswith("{") else text

    def metrics(self) -> dict[str, float]:
        """This router's /metrics, series -> value."""
        _, text = self.admin("GET", "/metrics")
        return {name: float(value) for name, value in samples(text).items()}

    def client(self) -> OrderClient:
        client = OrderClient(self.order_port)
        self.clients.append(client)
        return client

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def signal_router(self, sig: signal.Signals) -> None:
        """Signal the router its pid file names, as the node agent does: under routerd, right
        after a hand-over, routerd's own child is still the old router on its way out."""
        os.kill(int((self.home / "router.pid").read_text()), sig)

    def stop(self) -> int:
        assert self.proc is not None
        for client in self.clients:
            client.close()  # else the router waits for them to hang up
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def venue() -> Iterator[FakeVenue]:
    fake = FakeVenue()
    yield fake
    fake.close()


@pytest.fixture
def releases(tmp_path: Path) -> dict[str, Path]:
    """The three catalog releases, laid out as on a node."""
    root = tmp_path / "releases"
    return {
        "7.1.0": make_release(root, "7.1.0", ("sor", "power_peg"), {"flag_7": "power_peg"}),
        "8.0.0": make_release(root, "8.0.0", ("sor", "rlp"), {"flag_7": "rlp"}),
        "8.0.1": make_release(root, "8.0.1", ("sor", "rlp"), {"rlp_enable": "rlp"}),
    }


@pytest.fixture
def router_factory(
    tmp_path: Path, venue: FakeVenue, releases: dict[str, Path]
) -> Iterator[Callable[..., Router]]:
    """Start a router on `release` (default 7.1.0); every one started is stopped afterwards."""
    started: list[Router] = []

    def start(
        release: str = "7.1.0",
        flags: dict[str, tuple[bool, str]] | None = None,
        supervised: bool = False,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> Router:
        home = tmp_path / f"node{len(started)}"
        home.mkdir()
        router = Router(home, venue.port, supervised, env, **settings)
        point(router.current, releases[release])
        router.set_flags(**(flags or {"flag_7": (False, "power_peg")}))
        started.append(router)
        router.start()
        return router

    yield start
    for router in started:
        router.stop()
