"""The venue's tables are bounded (pricing.Limits): a client that says hello with thousands of node
names, or sends children for thousands of parents, symbols or releases, fills its table and no
more; what does not fit is refused with its reason, counted and logged once per run, and what
already fits goes on trading. Open order connections are bounded too."""

from __future__ import annotations

import json

import pytest
from market import venue as vn
from market.pricing import Book, Limits
from market_fixtures import FakeTransport
from smars import wire as router_wire


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    events: list[dict] = []
    monkeypatch.setattr(vn, "_monotonic", lambda: 100.0)  # refusal logs: one per kind here
    monkeypatch.setattr(
        vn, "_log", lambda event, level="info", **f: events.append({"event": event, **f})
    )
    return events


def connect(venue: vn.Venue, node: str | None = "smars-1", release: str = "7.1.0"):
    conn = vn.RouterConnection(venue)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    if node is not None:
        conn.data_received(router_wire.hello(node, release, "t"))
    return conn, transport


def child(i: int, parent: str = "P-1", symbol: str = "KCG", pqty: int = 500) -> bytes:
    return router_wire.child(i, parent, pqty, symbol, "buy", 100, "sor")


def reasons(transport: FakeTransport) -> list[str]:
    return [a.get("reason", a["type"]) for a in transport.answers()]


def test_thousands_of_node_names_fill_the_node_table_and_no_more(logged: list[dict]) -> None:
    venue = vn.Venue(Book())
    limit = Limits().nodes
    refused = []
    for i in range(3000):
        conn, transport = connect(venue, f"node-{i}")
        if transport.closed:
            refused.append(transport.answers())
        conn.connection_lost(None)  # and it reconnects under another name
    assert len(venue.book.nodes) == limit
    assert len(refused) == 3000 - limit
    assert refused[0] == [{"type": "reject", "id": None, "parent": None, "reason": "nodes"}]
    assert venue.book.stats()["refused"] == {"nodes": 3000 - limit}
    # A node already in the table still comes back, and trades.
    conn, transport = connect(venue, "node-7")
    conn.data_received(child(1))
    assert reasons(transport) == ["exec"] and not transport.closed
    assert [e["event"] for e in logged].count("hello_refused") == 1  # throttled


def test_a_reset_frees_the_node_table_but_keeps_the_connected_nodes(logged: list[dict]) -> None:
    venue = vn.Venue(Book(limits=Limits(nodes=2)))
    connect(venue, "smars-1")
    gone, _ = connect(venue, "smars-2")
    gone.connection_lost(None)
    _, transport = connect(venue, "smars-3")
    assert transport.closed and reasons(transport) == ["nodes"]
    venue.book.reset()
    _, transport = connect(venue, "smars-3")
    assert not transport.closed
    assert sorted(venue.book.nodes) == ["smars-1", "smars-3"]
    assert venue.book.stats()["refused"] == {}


def test_a_refused_hello_keeps_nothing_of_the_name_it_had(logged: list[dict]) -> None:
    venue = vn.Venue(Book(limits=Limits(nodes=1)))
    conn, transport = connect(venue, "smars-1")
    conn.data_received(router_wire.hello("smars-2", "7.1.0", "t") + child(1))
    assert reasons(transport) == ["nodes"] and transport.closed
    conn.connection_lost(None)
    stats = venue.book.stats()
    assert list(stats["nodes"]) == ["smars-1"]
    assert stats["nodes"]["smars-1"]["connected"] is False
    assert stats["executions"] == 0


def test_children_for_new_parents_beyond_the_tables_are_refused(logged: list[dict]) -> None:
    venue = vn.Venue(Book(limits=Limits(node_parents=100, parents=150)))
    conn, transport = connect(venue, "smars-1")
    conn.data_received(b"".join(child(i, f"P-{i}") for i in range(120)))
    answers = transport.answers()
    assert [a["type"] for a in answers] == ["exec"] * 100 + ["reject"] * 20
    assert answers[100] == {"type": "reject", "id": 100, "parent": "P-100", "reason": "parents"}
    # A parent the table holds still trades; a new one is still refused.
    conn.data_received(child(200, "P-0") + child(201, "P-new"))
    assert reasons(transport)[-2:] == ["exec", "parents"]
    # The table over all nodes is full after 50 more, whoever sends them.
    other, t2 = connect(venue, "smars-2")
    other.data_received(b"".join(child(i, f"Q-{i}") for i in range(60)))
    assert reasons(t2) == ["exec"] * 50 + ["parents"] * 10
    book = venue.book
    assert (len(book.nodes["smars-1"].parents), len(book.nodes["smars-2"].parents)) == (100, 50)
    stats = book.stats()
    assert stats["rejects"] == {"parents": 31}
    assert stats["executions"] == 151 and stats["messages"] == 182
    assert (stats["nodes"]["smars-1"]["rejected"], stats["nodes"]["smars-2"]["rejected"]) == (
        21,
        10,
    )
    assert 'venue_rejects_total{reason="parents"} 31' in vn.render_metrics(book)
    limits = [e for e in logged if e["event"] == "limit_reached"]
    assert [(e["reason"], e["router_node"]) for e in limits] == [("parents", "smars-1")]


def test_children_in_thousands_of_symbols_fill_the_symbol_table(logged: list[dict]) -> None:
    venue = vn.Venue(Book())
    limit = Limits().symbols
    conn, transport = connect(venue)
    names = [
        f"S{chr(65 + i // 676)}{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}" for i in range(5000)
    ]
    conn.data_received(b"".join(child(i, "P-1", s, pqty=10**6) for i, s in enumerate(names)))
    got = reasons(transport)
    assert got == ["exec"] * limit + ["symbols"] * (5000 - limit)
    book = venue.book
    assert len(book.symbols) == limit and len(book.nodes["smars-1"].positions) == limit
    conn.data_received(child(9000, "P-1", names[0], pqty=10**6))
    assert reasons(transport)[-1] == "exec"
    assert book.stats()["rejects"] == {"symbols": 5000 - limit}


def test_releases_of_a_node_are_bounded(logged: list[dict]) -> None:
    venue = vn.Venue(Book(limits=Limits(releases=2)))
    answers = []
    for release in ("7.1.0", "8.0.0", "8.0.1", "7.1.0"):
        conn, transport = connect(venue, "smars-1", release)
        conn.data_received(child(1) + child(2))
        answers.append(reasons(transport))
        conn.connection_lost(None)
    assert answers == [["exec", "exec"], ["exec", "exec"], ["releases"] * 2, ["exec", "exec"]]
    stats = venue.book.stats()
    assert stats["nodes"]["smars-1"]["releases"] == {"7.1.0": 4, "8.0.0": 2}
    assert stats["rejects"] == {"releases": 2}


def test_the_series_keeps_its_first_buckets_per_node(logged: list[dict]) -> None:
    book = Book(clock=lambda: 0.0, limits=Limits(buckets=4))
    book.reset(now=0.0)
    for i in range(10):
        order = (f"P-{i}", 100, i, "KCG", "buy", 100, "sor")
        assert book.children("smars-1", "7.1.0", [order, order], i * 0.25)[0] > 0
    assert book.series()["nodes"] == {"smars-1": [[0, 2], [1, 2], [2, 2], [3, 2]]}
    stats = book.stats(10.0)
    assert stats["refused"] == {"series": 12}
    assert stats["executions"] == 20  # they all traded
    assert book.limits_hit == ["series"]


def test_a_full_table_refuses_only_what_it_cannot_hold_in_a_batch() -> None:
    book = Book(limits=Limits(node_parents=3, symbols=2))
    orders = [
        ("A", 100, 1, "KCG", "buy", 10, "sor"),
        ("B", 100, 2, "IBM", "buy", 10, "sor"),
        ("C", 100, 3, "GE", "buy", 10, "sor"),  # third symbol: refused, parent C not kept
        ("C", 100, 4, "KCG", "buy", 10, "sor"),  # parent C is new and fits
        ("D", 100, 5, "KCG", "buy", 10, "sor"),  # fourth parent: refused
        ("A", 100, 6, "GE", "sell", 10, "sor"),  # known parent, unknown symbol: refused
        ("B", 100, 7, "IBM", "sell", 10, "sor"),
    ]
    prices = book.children("smars-1", "7.1.0", orders, 1.0)
    refused = {p: r for p, r in zip(range(7), prices, strict=True) if r <= 0}
    assert refused == {2: -2, 4: -1, 5: -2}
    assert sorted(book.nodes["smars-1"].parents) == ["A", "B", "C"]
    assert sorted(book.symbols) == ["IBM", "KCG"]
    assert book.rejects == {"symbols": 2, "parents": 1}


def test_open_order_connections_are_bounded(logged: list[dict]) -> None:
    venue = vn.Venue(Book(), max_connections=3)
    conns = [connect(venue, f"smars-{i}") for i in range(3)]
    extra, transport = connect(venue, None)
    assert transport.closed
    assert transport.answers() == [
        {"type": "reject", "id": None, "parent": None, "reason": "connections"}
    ]
    assert len(venue.connections) == 3
    extra.connection_lost(None)
    conns[0][0].connection_lost(None)
    _, transport = connect(venue, "smars-9")
    assert not transport.closed and len(venue.connections) == 3
    assert venue.book.stats()["refused"] == {"connections": 1}
    assert [e["event"] for e in logged if "refused" in e["event"]] == ["connection_refused"]
    assert json.loads(json.dumps(venue.book.stats()["limits"])) == {
        "nodes": 256,
        "parents": 1_000_000,
        "node_parents": 250_000,
        "symbols": 4096,
        "releases": 64,
        "buckets": 16384,
    }


def test_one_node_cannot_send_children_for_parents_without_bound() -> None:
    book = Book(cap=10**9)
    limit = Limits().node_parents
    refused = 0
    for start in range(0, limit + 10_000, 5000):
        orders = [(f"P-{i}", 100, i, "KCG", "buy", 100, "sor") for i in range(start, start + 5000)]
        refused += sum(p <= 0 for p in book.children("smars-1", "7.1.0", orders, 1.0))
    assert refused == 10_000
    assert len(book.nodes["smars-1"].parents) == limit
    assert book.rejects == {"parents": 10_000}
