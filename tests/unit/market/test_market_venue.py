"""The venue over loopback: `python3 -m market.venue` on free ports, a fake router, the admin API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from market.pricing import fair_cents
from market_fixtures import ROUTER_IMAGE, TOKEN, VENUE_ARGV, VenueProcess, venue_env


def http(v: VenueProcess, path: str, body: dict | None = None, token: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(v.admin + path, data=data, method="POST" if data else "GET")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            status = resp.status
            ctype = resp.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers["Content-Type"]
    return status, (json.loads(raw) if ctype == "application/json" else raw.decode())


def reset(v: VenueProcess, cap: int = 1000) -> dict:
    status, body = http(v, "/reset", {"cap": cap}, token=TOKEN)
    assert status == 200
    return body


class Router:
    """A fake router: one connection, hello first, then child orders; reads the answers."""

    def __init__(self, v: VenueProcess, node: str | None = "smars-3", release: str = "7.1.0"):
        self.sock = socket.create_connection(("127.0.0.1", v.port), timeout=5)
        self.buf = b""
        if node is not None:
            self.send({"type": "hello", "node": node, "release": release, "tree": "ab" * 32})

    def send(self, *msgs: dict) -> None:
        self.sock.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int) -> list[dict]:
        while self.buf.count(b"\n") < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the venue closed the connection"
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n", n)
        return [json.loads(line) for line in lines]

    def close(self) -> None:
        self.sock.close()


def kid(i: int, parent: str = "L1-1", pqty: int = 500, qty: int = 100, **kw: object) -> dict:
    m = {
        "type": "child",
        "id": i,
        "parent": parent,
        "pqty": pqty,
        "symbol": "KCG",
        "side": "buy",
        "qty": qty,
        "strategy": "sor",
    }
    m.update(kw)
    return m


def wait_until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def test_the_venue_logs_the_ports_it_bound_and_answers_health(venue: VenueProcess) -> None:
    assert venue.port > 0 and venue.admin_port > 0
    assert http(venue, "/health") == (200, {"status": "ok"})


def test_every_valid_child_is_filled_in_full_at_the_quote(venue: VenueProcess) -> None:
    reset(venue)
    r = Router(venue)
    fair = fair_cents("KCG")
    r.send(kid(1, side="buy", qty=100), kid(2, parent="L1-2", side="sell", qty=40))
    assert r.read(2) == [
        {"type": "exec", "id": 1, "parent": "L1-1", "qty": 100, "price": (fair + 1) / 100},
        {"type": "exec", "id": 2, "parent": "L1-2", "qty": 40, "price": (fair - 1) / 100},
    ]
    r.close()


def test_stats_count_per_node_and_release_and_excess_shares(venue: VenueProcess) -> None:
    reset(venue)
    old, new = Router(venue, "smars-8", "7.1.0"), Router(venue, "smars-1", "8.0.0")
    # smars-8 keeps sending children for one parent of 200 shares: 4 x 100 = 200 excess.
    old.send(*(kid(i, parent="L9-1", pqty=200, strategy="power_peg") for i in range(4)))
    new.send(kid(1, parent="L9-2", pqty=100))
    old.read(4)
    new.read(1)
    status, stats = http(venue, "/stats")
    assert status == 200
    n8, n1 = stats["nodes"]["smars-8"], stats["nodes"]["smars-1"]
    assert (n8["child_orders"], n8["executions"], n8["shares"]) == (4, 4, 400)
    assert (n8["excess_shares"], n8["releases"], n8["connected"]) == (200, {"7.1.0": 4}, True)
    assert (n1["executions"], n1["releases"], n1["excess_shares"]) == (1, {"8.0.0": 1}, 0)
    assert stats["excess_shares"] == 200
    assert stats["overfilled_parents"] == 1
    assert stats["executions"] == stats["messages"] == stats["child_orders"] == 5
    assert stats["symbols"]["KCG"]["position"] == 500
    assert stats["pnl"] < 0 and stats["loss_usd"] == -stats["pnl"]
    old.close()
    assert wait_until(lambda: not http(venue, "/stats")[1]["nodes"]["smars-8"]["connected"])
    new.close()


def test_a_connection_without_hello_is_tagged_unknown(venue: VenueProcess) -> None:
    reset(venue)
    r = Router(venue, node=None)
    r.send(kid(1))
    assert r.read(1)[0]["type"] == "exec"
    page = http(venue, "/executions?since=0")[1]
    row = dict(zip(page["fields"], page["executions"][0], strict=True))
    assert (row["node"], row["release"]) == ("unknown", "unknown")
    r.close()


def test_invalid_children_are_rejected_and_the_connection_goes_on(venue: VenueProcess) -> None:
    reset(venue)
    r = Router(venue)
    r.send(kid(1, qty=0), kid(2, side="short"), kid(3, symbol="kcg"), kid(4, parent="bad id"))
    r.send({"type": "child", "id": 5}, kid(True))  # missing fields; a bool is not an id
    r.send_raw(b"not json\n" + b"[" * 10000 + b"\n" + b"x" * 5000 + b"\n")
    r.send(kid(6))
    answers = r.read(10)
    assert [a["reason"] for a in answers[:9]] == ["invalid"] * 9
    assert [a["id"] for a in answers[:6]] == [1, 2, 3, 4, 5, None]
    assert answers[3]["parent"] is None
    assert answers[9]["type"] == "exec" and answers[9]["id"] == 6
    stats = http(venue, "/stats")[1]
    assert stats["rejects"] == {"invalid": 9}
    assert stats["executions"] == 1
    r.close()


def test_the_cap_rejects_every_child_once_reached_until_reset(venue: VenueProcess) -> None:
    reset(venue, cap=3)
    r = Router(venue)
    r.send(*(kid(i) for i in range(5)))
    answers = r.read(5)
    assert [a["type"] for a in answers] == ["exec"] * 3 + ["reject"] * 2
    assert answers[3] == {"type": "reject", "id": 3, "parent": "L1-1", "reason": "cap"}
    stats = http(venue, "/stats")[1]
    assert (stats["capped"], stats["cap"], stats["executions"]) == (True, 3, 3)
    events = [e["event"] for e in venue.events()]
    assert "cap_reached" in events
    reset(venue)
    r.send(kid(9))
    assert r.read(1)[0]["type"] == "exec"
    r.close()


def test_executions_page_with_since_and_limit(venue: VenueProcess) -> None:
    run = reset(venue)["run"]
    r = Router(venue, "smars-2", "8.0.1")
    r.send(*(kid(i, strategy="rlp") for i in range(7)))
    r.read(7)
    status, page = http(venue, "/executions?since=0&limit=3")
    assert status == 200
    assert page["run"] == run
    assert page["fields"] == [
        "seq",
        "t",
        "node",
        "release",
        "parent",
        "child",
        "symbol",
        "side",
        "qty",
        "price",
        "strategy",
    ]
    assert [row[0] for row in page["executions"]] == [1, 2, 3]
    assert page["next"] == 3
    row = dict(zip(page["fields"], page["executions"][0], strict=True))
    assert (row["node"], row["release"], row["child"], row["strategy"]) == (
        "smars-2",
        "8.0.1",
        0,
        "rlp",
    )
    rest = http(venue, f"/executions?since={page['next']}&limit=100")[1]
    assert [row[0] for row in rest["executions"]] == [4, 5, 6, 7]
    assert http(venue, "/executions?since=x")[0] == 400
    r.close()


def test_series_and_metrics(venue: VenueProcess) -> None:
    reset(venue)
    r = Router(venue, "smars-4")
    r.send(*(kid(i) for i in range(3)))
    r.read(3)
    series = http(venue, "/series")[1]
    assert series["bucket_s"] == 0.25
    assert sum(c for _, c in series["nodes"]["smars-4"]) == 3
    status, text = http(venue, "/metrics")
    assert status == 200
    assert 'venue_executions_total{node="smars-4",release="7.1.0"} 3' in text
    assert 'venue_connected{node="smars-4"} 1' in text
    assert "venue_capped 0" in text
    r.close()


def test_reset_needs_the_token(venue: VenueProcess) -> None:
    reset(venue)
    r = Router(venue)
    r.send(kid(1))
    r.read(1)
    assert http(venue, "/reset", {}) == (401, {"error": "unauthorized"})
    assert http(venue, "/reset", {}, token="wrong") == (401, {"error": "unauthorized"})
    assert http(venue, "/stats")[1]["executions"] == 1
    before = http(venue, "/stats")[1]["run"]
    status, body = http(venue, "/reset", {"cap": 50}, token=TOKEN)
    assert status == 200 and body["cap"] == 50 and body["run"] != before
    stats = http(venue, "/stats")[1]
    assert (stats["executions"], stats["messages"], stats["shares"], stats["cap"]) == (0, 0, 0, 50)
    assert stats["run"] == body["run"]
    assert http(venue, "/reset", {"cap": 0}, token=TOKEN)[0] == 400
    assert http(venue, "/nope")[0] == 404
    r.close()


def test_lifecycle_is_logged_but_never_per_message(venue: VenueProcess) -> None:
    reset(venue)
    # Its own log line may come after the answer: drain up to it, so it is not counted below.
    assert wait_until(lambda: "reset" in [e["event"] for e in venue.events()])
    r = Router(venue, "smars-5")
    r.send(*(kid(i) for i in range(200)))
    r.read(200)
    r.close()
    assert wait_until(lambda: not http(venue, "/stats")[1]["nodes"]["smars-5"]["connected"])
    # The log line and the table are two writes: wait for the line, then check nothing else came.
    events: list[str] = []
    wait_until(
        lambda: events.extend(e["event"] for e in venue.events()) or "router_disconnected" in events
    )
    assert events == ["router_connected", "router_disconnected"]


def test_bad_arguments_end_in_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "market.venue", "--cap", "0"],
        capture_output=True,
        text=True,
        env=venue_env(),
        cwd=ROUTER_IMAGE,
        timeout=10,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--cap" in proc.stderr


def test_the_venue_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        VENUE_ARGV,
        stdout=subprocess.PIPE,
        text=True,
        env=venue_env(),
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["event"] == "listening"
    proc.terminate()
    assert proc.wait(timeout=5) == 0
