"""A hello proves who sent it: with VENUE_HELLO_TOKEN the venue takes only a hello that carries that
token, refuses anything else with a reject line, logs it and closes the connection; without it,
every hello is taken as before (docs/protocol.md, "Router → venue")."""

from __future__ import annotations

import json
import socket

import pytest
from market import venue as vn
from market.pricing import Book
from market_fixtures import FakeTransport, running_venue
from smars import wire as router_wire

SECRET = "s3cret-hello"
UNAUTHORIZED = {"type": "reject", "id": None, "parent": None, "reason": "unauthorized"}


def line(m: dict) -> bytes:
    return json.dumps(m).encode() + b"\n"


def hello(node: str = "smars-3", **kw: object) -> bytes:
    return line({"type": "hello", "node": node, "release": "7.1.0", "tree": "ab" * 32, **kw})


def child(i: int = 1, parent: str = "L1-1") -> bytes:
    return router_wire.child(i, parent, 500, "KCG", "buy", 100, "sor")


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    events: list[dict] = []
    monkeypatch.setattr(
        vn, "_log", lambda event, level="info", **f: events.append({"event": event, **f})
    )
    return events


def connect(venue: vn.Venue) -> tuple[vn.RouterConnection, FakeTransport]:
    conn = vn.RouterConnection(venue)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_without_a_hello_token_every_hello_is_taken(logged: list[dict]) -> None:
    venue = vn.Venue(Book())
    first, t1 = connect(venue)
    first.data_received(hello("smars-1") + child(1))
    second, t2 = connect(venue)
    second.data_received(hello("smars-2", token="anything") + child(2))
    assert [a["type"] for a in t1.answers() + t2.answers()] == ["exec", "exec"]
    assert not t1.closed and not t2.closed
    stats = venue.book.stats()
    assert {k: n["connected"] for k, n in stats["nodes"].items()} == {
        "smars-1": True,
        "smars-2": True,
    }
    assert stats["refused"] == {}


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong", SECRET + "x", SECRET[:-1], 42, [SECRET], "\ud800"],
    ids=["absent", "empty", "wrong", "longer", "shorter", "number", "list", "surrogate"],
)
def test_a_hello_without_the_token_is_refused_and_the_connection_closed(
    logged: list[dict], token: object
) -> None:
    venue = vn.Venue(Book(), hello_token=SECRET)
    conn, transport = connect(venue)
    fields = {} if token is None else {"token": token}
    # The child in the same read must not trade either.
    conn.data_received(hello(**fields) + child(1))
    assert transport.answers() == [UNAUTHORIZED]
    assert transport.closed
    stats = venue.book.stats()
    assert stats["nodes"] == {}
    assert (stats["executions"], stats["messages"]) == (0, 0)
    assert stats["refused"] == {"unauthorized": 1}
    # Nothing more is read from a refused connection, even if the transport delivers it.
    conn.data_received(hello(token=SECRET) + child(2))
    assert transport.answers() == [UNAUTHORIZED]
    conn.connection_lost(None)
    assert venue.connections == set()
    assert [e["event"] for e in logged] == ["hello_refused"]
    assert logged[0]["reason"] == "unauthorized" and logged[0]["router_node"] == "smars-3"


@pytest.mark.parametrize(
    "first",
    [child(1), b"not json\n", line({"type": "child"}), b"[" * 5000 + b"\n"],
    ids=["child", "garbage", "invalid", "too-long"],
)
def test_with_a_token_nothing_but_a_hello_may_come_first(logged: list[dict], first: bytes) -> None:
    venue = vn.Venue(Book(), hello_token=SECRET)
    conn, transport = connect(venue)
    conn.data_received(first + hello(token=SECRET))
    assert transport.answers() == [UNAUTHORIZED]
    assert transport.closed
    stats = venue.book.stats()
    assert stats["nodes"] == {} and stats["messages"] == 0
    assert stats["refused"] == {"unauthorized": 1}


def test_the_right_token_admits_the_node_and_a_later_bad_hello_closes_it(
    logged: list[dict],
) -> None:
    venue = vn.Venue(Book(), hello_token=SECRET)
    conn, transport = connect(venue)
    conn.data_received(hello(token=SECRET) + child(1))
    assert [a["type"] for a in transport.answers()] == ["exec"]
    assert venue.book.stats()["nodes"]["smars-3"]["connected"] is True
    # A hello with a bad shape but the right token is answered `invalid`, as without a token.
    conn.data_received(line({"type": "hello", "node": "bad node", "release": "1", "token": SECRET}))
    assert transport.answers()[-1]["reason"] == "invalid" and not transport.closed
    # Re-identifying takes the token again; without it the connection is refused.
    conn.data_received(child(2) + hello("smars-4", token="nope") + child(3))
    answers = transport.answers()
    assert [a["type"] for a in answers[2:]] == ["exec", "reject"]
    assert answers[-1] == UNAUTHORIZED
    assert transport.closed
    conn.connection_lost(None)
    stats = venue.book.stats()
    assert stats["nodes"]["smars-3"]["connected"] is False
    assert "smars-4" not in stats["nodes"]
    assert stats["executions"] == 2
    assert [e["event"] for e in logged] == [
        "router_connected",
        "bad_hello",
        "hello_refused",
        "router_disconnected",
    ]


def test_refusals_are_logged_at_most_every_few_seconds_and_never_with_the_token(
    monkeypatch: pytest.MonkeyPatch, logged: list[dict]
) -> None:
    clock = [100.0]
    monkeypatch.setattr(vn, "_monotonic", lambda: clock[0])
    venue = vn.Venue(Book(), hello_token=SECRET)
    for guess in ("a", "b", "c"):
        conn, _ = connect(venue)
        conn.data_received(hello(token=guess))
    assert [e["unlogged"] for e in logged] == [0]
    clock[0] += vn.REFUSAL_LOG_S
    conn, _ = connect(venue)
    conn.data_received(hello(token="d"))
    assert [(e["event"], e["reason"], e["unlogged"]) for e in logged] == [
        ("hello_refused", "unauthorized", 0),
        ("hello_refused", "unauthorized", 2),
    ]
    assert venue.book.stats()["refused"] == {"unauthorized": 4}
    assert SECRET not in json.dumps(logged) and "guess" not in json.dumps(logged)


def test_the_venue_reads_its_hello_token_from_the_environment() -> None:
    with running_venue(env={"VENUE_HELLO_TOKEN": SECRET}) as v:
        assert v.listening["hello_auth"] is True
        refused = socket.create_connection(("127.0.0.1", v.port), timeout=5)
        refused.sendall(hello("smars-1", token="guess") + child(1))
        got = b""
        while chunk := refused.recv(4096):  # until the venue closes the connection
            got += chunk
        assert [json.loads(x) for x in got.splitlines()] == [UNAUTHORIZED]
        event = v.wait_event("hello_refused")
        assert (event["reason"], event["router_node"], event["level"]) == (
            "unauthorized",
            "smars-1",
            "warning",
        )
        admitted = socket.create_connection(("127.0.0.1", v.port), timeout=5)
        admitted.sendall(hello("smars-2", token=SECRET) + child(1))
        answer = json.loads(admitted.makefile("rb").readline())
        assert (answer["type"], answer["id"]) == ("exec", 1)
        assert v.wait_event("router_connected")["router_node"] == "smars-2"
        refused.close()
        admitted.close()
