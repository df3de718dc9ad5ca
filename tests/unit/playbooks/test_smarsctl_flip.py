"""smarsctl's flip handed to a process of the node's own (flip-start, flip-wait) on a node's
folders (a temp dir here, through its SMARS_* variables), against routers' admin APIs on
127.0.0.1: flip-start returns while the node waits for its peers, flip-wait reports the
flip's end, and a rescue stops a flip still waiting, so that nothing flips after it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SMARSCTL = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"
FILES = {"release.json": b'{"version": "X"}\n', "smars/__init__.py": b'"""smars"""\n'}


def tree_of(files: dict[str, bytes]) -> str:
    listing = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


OLD = {**FILES, "release.json": b'{"version": "7.1.0"}\n'}
NEW = {**FILES, "release.json": b'{"version": "8.0.1"}\n'}


@dataclass
class Router:
    """A router's admin API as the flip sees it: it runs `tree`, arms when asked, and says
    whether it is armed for a tree (a long poll cut short here: it answers at once)."""

    tree: str
    arms: bool = True
    armed: str | None = None
    asked: list[str] = field(default_factory=list)
    url: str = ""
    #: The node whose `current` link says what this router runs (a router that switches when
    #: the node's flip signals it), instead of `tree`.
    follows: Path | None = None
    #: Called when this router is armed (a test's peer may switch some time after it).
    on_arm: Callable[[], None] | None = None
    #: When (time.monotonic()) its /health starts to answer 200: its venue connection is up.
    healthy_from: float = 0.0

    def code(self, path: str) -> int:
        return 503 if path == "/health" and time.monotonic() < self.healthy_from else 200

    def running(self) -> str:
        if self.follows is None:
            return self.tree
        return tree_of(NEW if os.readlink(self.follows).endswith("8.0.1") else OLD)

    def answer(self, path: str, query: dict[str, str]) -> dict:
        self.asked.append(path)
        if path == "/switch/arm" and self.arms:
            self.armed = query["tree"]
            if self.on_arm is not None:
                self.on_arm()
        if path == "/switch/armed":
            return self.long_poll(query)
        return {"release": "7.1.0", "tree": self.running(), "trading": "active", "pid": 1}

    def long_poll(self, query: dict[str, str]) -> dict:
        """As a router's: ready once armed for the tree or running it (with running=1: once
        running it), or when the wait is over."""
        wanted = query["tree"]

        def ready() -> bool:
            running = self.running()
            return wanted == running or (query.get("running") != "1" and wanted == self.armed)

        deadline = time.monotonic() + float(query.get("wait", "0"))
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"ready": ready(), "armed": self.armed, "tree": self.running()}


@pytest.fixture
def routers() -> Iterator[list[Router]]:
    made: list[Router] = []
    servers = []

    def serve(router: Router) -> Router:
        class Handler(BaseHTTPRequestHandler):
            def reply(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                body = json.dumps(router.answer(parts.path, query)).encode()
                self.send_response(router.code(parts.path))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = reply

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        router.url = f"http://127.0.0.1:{server.server_address[1]}"
        made.append(router)
        return router

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class Node:
    root: Path

    @property
    def flip_dir(self) -> Path:
        return self.root / "flip"

    @property
    def pending(self) -> Path:
        return self.root / "switch.pending"

    def current(self) -> str:
        return os.readlink(self.root / "opt" / "current")

    def run(self, router: Router, *args: str) -> tuple[int, dict]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARS_")}
        env |= {
            "SMARS_HOME": str(self.root / "opt"),
            "SMARS_ETC": str(self.root / "etc"),
            "SMARS_PID_FILE": str(self.root / "router.pid"),
            "SMARS_PENDING": str(self.pending),
            "SMARS_FLIP_DIR": str(self.flip_dir),
            "SMARS_ADMIN_URL": router.url,
            "SMARS_ADMIN_TOKEN": "t",
        }
        run = subprocess.run(
            [sys.executable, "-", *args],
            input=SMARSCTL.read_text(),  # as the playbooks send it
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert run.stdout, run.stderr
        return run.returncode, json.loads(run.stdout)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """A node on 7.1.0 with 8.0.1 staged beside it."""
    for version, files in (("7.1.0", OLD), ("8.0.1", NEW)):
        for path, data in files.items():
            target = tmp_path / "opt" / "releases" / version / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (tmp_path / "opt" / "current").symlink_to("releases/7.1.0")
    (tmp_path / "etc").mkdir()
    return Node(tmp_path)


def flip_start(node: Node, me: Router, peers: list[Router], arm_timeout: str) -> tuple[int, dict]:
    urls = ",".join(r.url for r in [me, *peers])
    return node.run(me, "flip-start", "8.0.1", tree_of(NEW), arm_timeout, "5", urls)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_flip_start_returns_while_the_node_waits_for_a_peer_then_wait_reports_the_late_peer(
    node, routers
):
    me, late = routers(Router(tree_of(OLD))), routers(Router(tree_of(OLD), arms=False))
    code, out = flip_start(node, me, [late], arm_timeout="6")
    assert code == 0, out
    # Returned with the peer still unarmed: the flip it handed over is what waits.
    assert late.armed != tree_of(NEW) and alive(out["flipping"])
    armed = time.monotonic() + 5
    while me.armed != tree_of(NEW):  # the handed-over flip arms the node: soon, not before
        assert time.monotonic() < armed, "the handed-over flip never armed the node"
        time.sleep(0.02)
    code, out = node.run(me, "flip-wait", "20")
    assert code == 1
    assert out["error"].startswith(f"not armed for tree {tree_of(NEW)[:12]} in time: {late.url}")
    assert node.current() == "releases/7.1.0" and not node.pending.exists()


def test_a_rescue_stops_a_flip_still_waiting_and_nothing_flips_after_it(node, routers):
    me, late = routers(Router(tree_of(OLD))), routers(Router(tree_of(OLD), arms=False))
    code, out = flip_start(node, me, [late], arm_timeout="60")
    assert code == 0, out
    flipping = out["flipping"]
    code, out = node.run(me, "restore", "7.1.0", tree_of(OLD))
    assert code == 0, out
    assert out["flip_stopped"] == "stopped"
    assert (node.flip_dir / "decision").read_text() == "stop\n"
    # The peer arms now: a flip still waiting would switch this node. None does.
    late.armed = tree_of(NEW)
    code, out = node.run(me, "flip-wait", "5")
    assert code == 1
    assert out["error"] == "the flip handed to this node ended without a result"
    assert not alive(flipping)
    assert node.current() == "releases/7.1.0" and not node.pending.exists()


def test_a_new_flip_start_stops_the_flip_an_earlier_deploy_left_waiting(node, routers):
    me, late = routers(Router(tree_of(OLD))), routers(Router(tree_of(OLD), arms=False))
    first = flip_start(node, me, [late], arm_timeout="60")[1]["flipping"]
    code, out = flip_start(node, me, [late], arm_timeout="1")
    assert code == 0, out
    assert out["stopped_earlier"] == "stopped"
    assert not alive(first) and out["flipping"] != first
    # The earlier flip's "stop" is not the new flip's: its decision is still to be made.
    assert not (node.flip_dir / "decision").exists()


def test_flip_start_without_peers_is_refused_before_anything_is_handed_over(node, routers):
    me = routers(Router(tree_of(OLD)))
    code, out = node.run(me, "flip-start", "8.0.1", tree_of(NEW), "5", "5", "")
    assert code == 1
    assert out["error"] == "flip-start: no peers (a lone node flips with `flip`)"
    assert not (node.flip_dir / "pid").exists()


def test_the_fleet_wait_asks_a_peer_still_switching_a_few_times_not_every_few_milliseconds(
    node, routers, tmp_path
):
    """After its own switch a node waits until every peer runs the new tree. A peer that takes
    a second more must not be asked every few milliseconds meanwhile: on a fleet of N nodes
    that is N * N requests each time round, which starves the routers still switching."""
    peer = routers(Router(tree_of(OLD), armed=tree_of(NEW)))

    def switch_peer_soon() -> None:
        threading.Timer(1.0, lambda: setattr(peer, "tree", tree_of(NEW))).start()

    me = routers(
        Router(tree_of(OLD), follows=node.root / "opt" / "current", on_arm=switch_peer_soon)
    )
    # The router's pid: a process that lets the flip's SIGUSR2 pass (the fake router switches
    # when the node's `current` link does).
    sleeper = subprocess.Popen(
        ["sleep", "60"], preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    )
    try:
        (node.root / "router.pid").write_text(f"{sleeper.pid}\n")
        urls = f"{me.url},{peer.url}"
        code, out = node.run(me, "flip", "8.0.1", tree_of(NEW), "10", urls)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 0, out
    assert (out["tree"], out["intake"]) == (tree_of(NEW), "open")
    assert peer.tree == tree_of(NEW)
    asked = [p for p in peer.asked if p in ("/version", "/switch/armed")]
    # A glance before arming, then one long poll (two if it is cut short), not one request
    # every 20 ms for the second the peer took.
    assert len(asked) <= 4, asked


def test_a_switched_node_waits_for_its_venue_connection_without_a_busy_poll(node, routers):
    """The new process runs the tree but its venue connection takes a second to come up: the
    node asks its router again less and less often, not three requests every 10 ms (on a
    32-node lab that busy poll was thousands of requests a second on the cores the new
    processes needed to connect)."""
    me = routers(Router(tree_of(OLD), follows=node.root / "opt" / "current"))
    sleeper = subprocess.Popen(
        ["sleep", "60"], preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    )
    try:
        (node.root / "router.pid").write_text(f"{sleeper.pid}\n")
        me.healthy_from = time.monotonic() + 1.5
        code, out = node.run(me, "switch", "8.0.1", tree_of(NEW), "10")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert code == 0, out
    assert (out["tree"], out["healthy"], out["switched"]) == (tree_of(NEW), True, True)
    asked = [p for p in me.asked if p in ("/health", "/version", "/switch/armed")]
    assert len(asked) <= 60, len(asked)
