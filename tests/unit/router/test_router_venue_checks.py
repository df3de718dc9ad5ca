"""What the router accepts from the venue and says about it (docs/protocol.md, "Venue → router",
"Router → venue", "Router admin HTTP"): executions with a price that is not a positive finite
number or an absurd quantity are refused, logged and leave the books and the reference price as
they were; /health says when the venue is down or silent, and why; the hello carries the
venue token from the environment."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from router_fixtures import FakeVenue, order, wait_for
from smars import wire
from smars.book import Book
from smars.egress import Egress
from smars.risk import Limits, RiskGate
from smars.state import State
from smars.strategies import discover

pytestmark = pytest.mark.timeout(60)


class Lines:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def add(self, line: bytes) -> None:
        self.lines.append(json.loads(line))


class FakeLoop:
    def time(self) -> float:
        return 0.0

    def call_later(self, delay: float, callback: Any) -> None:
        pass


def core() -> tuple[Book, Egress, Lines, Lines]:
    state = State("/nonexistent/state.json")
    gate = RiskGate(Limits(), state=state, enabled=lambda: True)
    egress = Egress(state, gate)
    venue, client = Lines(), Lines()
    egress.attach(venue)  # type: ignore[arg-type]
    book = Book(
        loop=FakeLoop(),  # type: ignore[arg-type]
        egress=egress,
        strategies=discover(),
        slice_qty=100,
        peg_interval_s=0.02,
        peg_max_children_per_s=500,
    )
    return book, egress, venue, client


# The messages themselves.


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":0.0}',  # the fast path's shape
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":0.0000}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":0}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":-10.5}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":-0.0}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":NaN}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":Infinity}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":1e999}',
        b'{"type":"exec","id":1,"parent":"p","qty":100,"price":true}',
        b'{"type":"exec","id":1,"parent":"p","qty":0,"price":10.0}',
        b'{"type":"exec","id":1,"parent":"p","qty":-100,"price":10.0}',
    ],
)
def test_an_execution_needs_a_positive_finite_price_and_quantity(line):
    with pytest.raises(wire.VenueMessageError):
        wire.parse_venue(line)


def test_a_good_execution_still_reads():
    line = b'{"type":"exec","id":7,"parent":"p","qty":100,"price":0.01}'
    assert wire.parse_venue(line) == (wire.EXEC, 7, 100, 0.01)


def test_an_execution_of_more_than_the_child_has_open_is_refused_and_changes_nothing():
    book, egress, venue, client = core()
    parent = book.open(wire.Order("P1", "KCG", "buy", 300, False), book.strategies["sor"], client)  # type: ignore[arg-type]
    child = venue.lines[0]
    assert child["qty"] == 100
    exposure, committed = egress.gate.exposure, parent.committed
    with pytest.raises(wire.VenueMessageError, match="qty: 101 is more than the 100 shares"):
        book.on_execution(child["id"], 101, 50.0)
    assert egress.gate.prices == {}  # the reference price is not taken from it
    assert (egress.gate.exposure, parent.committed) == (exposure, committed)
    assert (parent.tracker.cum, book.counts.executions, client.lines) == (0, 0, [])
    book.on_execution(child["id"], 60, 20.0)  # partial executions add up to the child
    with pytest.raises(wire.VenueMessageError, match="qty: 41 is more than the 40 shares"):
        book.on_execution(child["id"], 41, 30.0)
    assert egress.gate.prices == {"KCG": 20.0}
    book.on_execution(child["id"], 40, 21.0)
    assert parent.tracker.cum == 100


# In the real router.


def test_the_router_refuses_absurd_executions_logs_them_and_keeps_trading(
    router_factory, venue: FakeVenue
):
    def answer(child: dict[str, Any]) -> list[dict[str, Any]]:
        base = {"type": "exec", "id": child["id"], "parent": child["parent"]}
        return [
            {**base, "qty": child["qty"], "price": 0.0},
            {**base, "qty": child["qty"], "price": -3.5},
            {**base, "qty": child["qty"] * 1000, "price": 10.0},
            {**base, "qty": child["qty"], "price": 10.0},
        ]

    venue.answer = answer
    router = router_factory()
    client = router.client()
    client.send(order("A-1", qty=100))
    messages = client.until(lambda m: m.get("leaves") == 0)
    assert messages == [
        {"type": "ack", "id": "A-1"},
        {"type": "fill", "id": "A-1", "qty": 100, "price": 10.0, "cum": 100, "leaves": 0},
    ]
    event = router.wait_event("venue_message_invalid")
    assert event["error"] == "price: expected a positive finite number"
    metrics = wait_for(
        lambda: (m := router.metrics())['smars_errors_total{kind="venue_message"}'] == 3 and m,
        5,
        "three refused venue messages",
    )
    assert metrics["smars_overfill_shares_total"] == 0
    assert metrics["smars_shares_executed_total"] == 100
    assert router.admin("GET", "/health")[0] == 200


def test_health_is_503_with_a_reason_while_the_venue_is_down(router_factory):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # nothing listens there
    router = router_factory(venue=f"127.0.0.1:{dead}")
    router.wait_event("venue_connect_failed")
    status, body = router.admin("GET", "/health")
    assert status == 503
    assert (body["status"], body["venue"]) == ("unavailable", "disconnected")
    assert body["reason"] == f"no connection to the venue at 127.0.0.1:{dead}"
    venue = router.admin("GET", "/version")[1]["venue"]
    assert (venue["state"], venue["address"]) == ("disconnected", f"127.0.0.1:{dead}")


def test_health_is_503_while_the_venue_leaves_children_unanswered(router_factory, venue: FakeVenue):
    router = router_factory(venue_silence_s=0.3)
    router.wait_event("venue_connected")
    status, body = router.admin("GET", "/health")
    assert (status, body["venue"], "reason" in body) == (200, "connected", False)
    venue.hold = True
    client = router.client()
    client.send(order("S-1", qty=100))
    assert client.receive() == {"type": "ack", "id": "S-1"}

    def silent() -> dict[str, Any] | None:
        status, body = router.admin("GET", "/health")
        return body if status == 503 else None

    body = wait_for(silent, 5, "health to say the venue is silent")
    assert (body["status"], body["venue"]) == ("unavailable", "silent")
    assert body["reason"].startswith("the venue has answered nothing for ")
    assert body["reason"].endswith(" s with 1 child order unanswered")
    version = router.admin("GET", "/version")[1]["venue"]
    assert (version["state"], version["unanswered"]) == ("silent", 1)
    venue.hold = False
    venue.release()  # the held children are answered, late
    assert client.until(lambda m: m.get("leaves") == 0)[-1]["cum"] == 100
    wait_for(lambda: router.admin("GET", "/health")[0] == 200, 5, "health to recover")


def test_the_hello_carries_the_venue_token_from_the_environment(router_factory, venue: FakeVenue):
    router = router_factory(env={"SMARS_VENUE_TOKEN": "s3cret-venue"})
    wait_for(lambda: venue.hellos, 5, "the hello")
    assert venue.hellos[-1]["token"] == "s3cret-venue"
    assert not any("s3cret-venue" in json.dumps(e) for e in router.events)  # never logged
    count = len(venue.hellos)
    router_factory()  # without the variable: no token field
    wait_for(lambda: len(venue.hellos) > count, 5, "the second hello")
    assert "token" not in venue.hellos[-1]


def test_the_hello_encoder():
    tree = "ab" * 32
    assert json.loads(wire.hello("smars-1", "7.1.0", tree)) == {
        "type": "hello",
        "node": "smars-1",
        "release": "7.1.0",
        "tree": tree,
    }
    assert json.loads(wire.hello("smars-1", "7.1.0", tree, token="t"))["token"] == "t"
