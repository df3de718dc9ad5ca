"""The router on real containers: orders flow to every node and the venue, Power Peg overfills on
the old build when flag_7 is on, RLP on the new build never does, hostile input is refused, the
admin API and the order port cannot be starved, every router proves itself to the venue, and
/health says when the venue stops answering."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from helpers import exchange, metric

from toolkit.errors import LabError
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadSpec, during_load, run_load


def test_orders_reach_every_router_and_the_venue_counts_fills_per_node(baseline: Lab):
    result = run_load(baseline, LoadSpec(rate=400, duration_s=3, qty=300))
    assert result.accounted
    assert result.unanswered == 0 and result.rejected == 0
    assert result.filled == result.sent > 1000
    assert result.overfilled == 0 and result.excess_shares == 0
    for node in baseline.settings.node_names:
        assert result.per_target[f"{node}:7001"]["filled"] > 100
    stats = baseline.venue_admin().get("/stats")
    assert sorted(stats["nodes"]) == baseline.settings.node_names
    for node, row in stats["nodes"].items():
        assert row["executions"] > 0, node
        assert row["releases"] == {"7.1.0": row["executions"]}
        assert row["excess_shares"] == 0
    # 300 shares each, sliced by 100: three child orders and executions per parent
    assert stats["executions"] == 3 * result.sent
    assert stats["shares"] == 300 * result.sent
    assert stats["excess_shares"] == 0


def test_flag_7_off_never_overfills_even_for_rlp_orders(baseline: Lab):
    result = run_load(baseline, LoadSpec(rate=200, duration_s=2, rlp_share=1.0))
    assert result.filled == result.sent and result.overfilled == 0
    assert baseline.venue_admin().get("/stats")["excess_shares"] == 0


def _flag_7_on(lab: Lab, node: str) -> dict:
    # The 2012 launch: flag_7 switched on with its new meaning.
    return lab.set_flags(node, {"flag_7": {"value": True, "meaning": "rlp"}})


def test_old_release_with_flag_7_on_runs_power_peg_and_overfills_while_orders_flow(baseline: Lab):
    node = "smars-3"
    _flag_7_on(baseline, node)
    venue = baseline.venue_admin()
    samples: list[int] = []

    def excess() -> int:
        return int(venue.get("/stats")["nodes"].get(node, {}).get("excess_shares", 0))

    def grows() -> None:
        """Three readings of the node's excess shares, each higher than the one before, while
        its orders flow: each waited for (a minute at most), not timed."""
        for _ in range(3):
            deadline = time.monotonic() + 60
            while (now := excess()) <= (samples[-1] if samples else 0):
                assert time.monotonic() < deadline, f"excess shares stopped growing: {samples}"
                time.sleep(0.1)
            samples.append(now)

    spec = LoadSpec(
        nodes=(node,), rate=40, duration_s=600, rlp_share=1.0, drain_s=1, prefix="pegload"
    )
    during_load(baseline, spec, grows, after=0)
    assert len(samples) == 3 and 0 < samples[0] < samples[1] < samples[2], samples
    executions = venue.get("/executions?since=0&limit=500")
    fields = executions["fields"]
    rows = [dict(zip(fields, row, strict=True)) for row in executions["executions"]]
    assert {r["node"] for r in rows} == {node}
    assert {r["release"] for r in rows} == {"7.1.0"}
    assert {r["strategy"] for r in rows} == {"power_peg"}
    baseline.node_admin(node).post("/kill")  # stop the runaway before the next test


def test_new_release_with_flag_7_on_runs_rlp_and_never_overfills(baseline: Lab):
    node = "smars-5"
    container_id = baseline.engine.get(baseline.settings.container(node)).id
    version = baseline.install_release(node, "8.0.0")
    assert version["release"] == "8.0.0"
    assert version["tree"] == baseline.artifact("8.0.0").tree
    # the switch re-executed the process in place: same container
    assert baseline.engine.get(baseline.settings.container(node)).id == container_id
    _flag_7_on(baseline, node)
    result = run_load(
        baseline, LoadSpec(nodes=(node,), rate=100, duration_s=3, rlp_share=1.0, qty=300)
    )
    assert result.filled == result.sent > 200
    assert result.overfilled == 0 and result.excess_shares == 0
    stats = baseline.venue_admin().get("/stats")
    assert stats["nodes"][node]["excess_shares"] == 0
    assert stats["nodes"][node]["releases"] == {"8.0.0": stats["nodes"][node]["executions"]}
    assert stats["nodes"][node]["shares"] == 300 * result.sent
    rows = baseline.venue_admin().get("/executions?since=0&limit=50")
    strategies = {row[rows["fields"].index("strategy")] for row in rows["executions"]}
    assert strategies == {"rlp"}


def test_hostile_input_is_rejected_and_the_router_stays_up(baseline: Lab):
    node = "smars-2"
    port = baseline.order_port(node)
    admin = baseline.node_admin(node)
    before = admin.metrics()
    good = {"type": "order", "id": "ok-1", "symbol": "KCG", "side": "buy", "qty": 100}
    bad = [
        b"this is not json\n",
        b"[1, 2, 3]\n",
        b"\xff\xfe\xfd\n",
        b'{"type": "order", ' + b'"x": "' + b"A" * 10_000 + b'"}\n',
        b"[" * 5000 + b"]" * 5000 + b"\n",
        json.dumps({**good, "id": "u-1", "colour": "red"}).encode() + b"\n",
        json.dumps({**good, "id": "z-1", "qty": 0}).encode() + b"\n",
        json.dumps({**good, "id": "n-1", "qty": -5}).encode() + b"\n",
        json.dumps({**good, "id": "b-1", "qty": True}).encode() + b"\n",
        json.dumps({**good, "id": "s-1", "side": "short"}).encode() + b"\n",
        json.dumps({**good, "id": "m-1", "qty": None}).encode() + b"\n",
    ]
    answers = exchange(port, [*bad, json.dumps(good).encode() + b"\n"], expect=len(bad) + 2)
    rejects = [a for a in answers if a["type"] == "reject"]
    assert [r["reason"] for r in rejects] == ["malformed"] * 5 + ["invalid"] * 6
    assert all(r["retry"] is False for r in rejects)
    assert [r["id"] for r in rejects[5:]] == ["u-1", "z-1", "n-1", "b-1", "s-1", "m-1"]
    assert [a["type"] for a in answers if a.get("id") == "ok-1"] == ["ack", "fill"]
    after = admin.metrics()
    for reason, count in (("malformed", 5), ("invalid", 6)):
        delta = metric(after, "smars_rejects_total", reason=reason) - metric(
            before, "smars_rejects_total", reason=reason
        )
        assert delta == count, reason
    assert admin.get("/health")["status"] == "ok"


def test_malformed_flags_file_keeps_the_last_good_flags_and_reports_the_error(baseline: Lab):
    node = "smars-4"
    admin = baseline.node_admin(node)
    good = admin.get("/version")["flags"]
    for content in (
        b"{not json",
        b'{"flags": {"flag_7": {"value": "yes", "meaning": "rlp"}}}',
        b"[]",
    ):
        baseline.write_flags_file(node, content)
        answer = admin.post("/reload")
        version = admin.get("/version")
        assert version["flags"] == good
        assert version["flags_error"], content
        assert answer.get("flags_error") == version["flags_error"]
        assert admin.request("GET", "/health", auth=False).status == 200
    assert metric(admin.metrics(), "smars_flag_errors_total") >= 3


def test_mutating_admin_calls_need_the_token(baseline: Lab):
    node = baseline.node_admin("smars-6")
    for path in ("/kill", "/resume", "/intake/pause", "/intake/resume", "/reload"):
        assert node.request("POST", path, {}, auth=False).status == 401, path
    wrong = type(node)("smars-6", int(node.base.rsplit(":", 1)[1]), "not-the-token")
    assert wrong.request("POST", "/kill", {}).status == 401
    assert node.get("/version")["trading"] == "active"
    assert node.get("/version")["intake"] == "open"
    assert baseline.venue_admin().request("POST", "/reset", {}, auth=False).status == 401


def test_kill_switch_cancels_and_refuses_then_resume_trades_again(baseline: Lab):
    node = "smars-7"
    admin = baseline.node_admin(node)
    assert admin.post("/kill")["trading"] == "killed"
    port = baseline.order_port(node)
    order = {"type": "order", "id": "k-1", "symbol": "KCG", "side": "sell", "qty": 100}
    [answer] = exchange(port, [json.dumps(order).encode() + b"\n"], expect=1)
    assert (answer["type"], answer["reason"], answer["retry"]) == ("reject", "killed", False)
    assert admin.post("/resume")["trading"] == "active"
    answers = exchange(port, [json.dumps({**order, "id": "k-2"}).encode() + b"\n"], expect=2)
    assert [a["type"] for a in answers] == ["ack", "fill"]


# Hardening: the admin API, the order port, the venue link.

TREE = "ab" * 32


def _admin_port(lab: Lab, node: str) -> int:
    return int(lab.node_admin(node).base.rsplit(":", 1)[1])


@contextlib.contextmanager
def _connections(port: int, heads: list[bytes]) -> Iterator[list[socket.socket]]:
    """Connections left open after sending `heads` (requests, parts of one, or nothing)."""
    socks: list[socket.socket] = []
    try:
        for head in heads:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(sock)
            if head:
                sock.sendall(head)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait until `check` holds. While the admin API is flooded an unauthenticated request (the
    metrics scrape) may lose its slot to a newer connection: that is asked again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except LabError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(request)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    return int(answer.split(b" ", 2)[1])


def _closed_with(socks: list[socket.socket], count: int) -> list[bytes]:
    """Reads the connections until `count` of them are closed by the other side; what each of
    those received."""
    got = {sock: b"" for sock in socks}
    closed: list[bytes] = []
    open_ = set(socks)
    deadline = time.monotonic() + 15
    while len(closed) < count:
        assert time.monotonic() < deadline, f"{len(closed)} of {count} closed"
        readable, _, _ = select.select(list(open_), [], [], 0.1)
        for sock in readable:
            data = sock.recv(65536)
            got[sock] += data
            if not data:
                open_.discard(sock)
                closed.append(got[sock])
    return closed


def test_the_kill_switch_answers_within_a_second_while_the_admin_api_is_flooded(baseline: Lab):
    node = "smars-1"
    admin = baseline.node_admin(node)
    port = _admin_port(baseline, node)
    for wait in ("nan", "inf", "-1", "1e400", "11"):  # refused at once, never waited on
        head = f"GET /switch/armed?tree={TREE}&wait={wait} HTTP/1.1\r\n\r\n".encode()
        assert _status(port, head) == 400, wait
    poll = f"GET /switch/armed?tree={TREE}&wait=10 HTTP/1.1\r\n\r\n".encode()
    partial = b"GET /health HTTP/1.1\r\nHost: x\r\n"  # never finished
    heads = [poll] * 64 + [b""] * 16 + [partial] * 16  # more than the 64 slots
    with _connections(port, heads):
        _until(lambda: metric(admin.metrics(), "smars_admin_polls") >= 16, 10, "the long polls")
        for path, trading in (("/kill", "killed"), ("/resume", "active")):
            started = time.monotonic()
            assert admin.post(path)["trading"] == trading
            assert time.monotonic() - started < 1.0, path
        assert admin.request("GET", "/health", auth=False).status == 200
    # The polls end with their clients: nothing left waiting (nor spinning) behind them.
    _until(lambda: metric(admin.metrics(), "smars_admin_polls") == 0, 5, "the polls to end")
    assert metric(admin.metrics(), "smars_admin_evicted_total") >= 32


def test_a_flood_of_order_connections_is_capped_and_leaves_the_kill_switch_answering(
    baseline: Lab,
):
    node = "smars-2"
    admin = baseline.node_admin(node)
    with _connections(baseline.order_port(node), [b""] * 300) as socks:
        # Beyond the cap (256 by default) a connection is told `closing` and closed.
        told = _closed_with(socks, 300 - 256)
        assert set(told) == {b'{"type":"closing","reason":"too_many_connections"}\n'}
        started = time.monotonic()
        assert admin.post("/kill")["trading"] == "killed"
        assert time.monotonic() - started < 1.0
        assert metric(admin.metrics(), "smars_order_connections") == 256
    assert admin.post("/resume")["trading"] == "active"
    _until(lambda: metric(admin.metrics(), "smars_order_connections") == 0, 10, "the flood to go")
    order = {"type": "order", "id": "after-flood", "symbol": "KCG", "side": "buy", "qty": 100}
    answers = exchange(baseline.order_port(node), [json.dumps(order).encode() + b"\n"], 2)
    assert [a["type"] for a in answers] == ["ack", "fill"]


def test_every_router_presents_the_hello_token_the_venue_expects(baseline: Lab):
    nodes = baseline.settings.node_names
    stats = baseline.venue_admin().get("/stats")
    assert {n: stats["nodes"][n]["connected"] for n in nodes} == dict.fromkeys(nodes, True)
    for node in nodes:
        assert baseline.node_admin(node).get("/version")["venue"]["state"] == "connected"


def test_health_is_503_with_a_reason_while_the_venue_leaves_children_unanswered(baseline: Lab):
    node = "smars-2"
    admin = baseline.node_admin(node)
    engine = baseline.engine
    venue = engine.get(baseline.settings.container("venue"))
    order = {"type": "order", "id": "silent-1", "symbol": "KCG", "side": "buy", "qty": 100}
    engine.pause(venue)
    try:
        with socket.create_connection(("127.0.0.1", baseline.order_port(node)), timeout=30) as s:
            reader = s.makefile("rb")
            s.sendall(json.dumps(order).encode() + b"\n")
            assert json.loads(reader.readline()) == {"type": "ack", "id": "silent-1"}
            health = _until(
                lambda: (r := admin.request("GET", "/health", auth=False)).status == 503 and r,
                15,
                "health to say the venue is silent",
            )
            assert (health.body["status"], health.body["venue"]) == ("unavailable", "silent")
            assert health.body["reason"].startswith("the venue has answered nothing for ")
            assert admin.get("/version")["venue"]["unanswered"] == 1
            engine.unpause(venue)
            fill = json.loads(reader.readline())  # answered late, once the venue runs again
            assert (fill["type"], fill["leaves"]) == ("fill", 0)
        _until(lambda: admin.request("GET", "/health", auth=False).status == 200, 10, "health")
    finally:
        if engine.state(venue) == "paused":
            engine.unpause(venue)
