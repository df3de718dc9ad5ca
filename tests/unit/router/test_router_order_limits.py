"""The order port's limits (docs/protocol.md, "Client → router", "Limits"): a cap of working
parents per connection answered with a reject the load generator does not retry, a cap of
connections, an idle timeout, and a flood of idle order connections that leaves the admin API
and the kill switch answering."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest
from router_fixtures import TOKEN, FakeVenue, OrderClient, order, wait_for

pytestmark = pytest.mark.timeout(120)


def closed_by_router(client: OrderClient) -> bool:
    """Reads until the router closes the connection (True), or the socket's timeout (False)."""
    try:
        while client.reader.readline():
            pass
    except TimeoutError:
        return False
    return True


def test_one_connection_cannot_take_every_working_slot(router_factory, venue: FakeVenue):
    venue.hold = True  # every parent stays working
    router = router_factory(max_working=8, max_working_per_connection=3)
    greedy, other = router.client(), router.client()
    for i in range(4):
        greedy.send(order(f"g-{i}", qty=100))
    answers = [greedy.receive() for _ in range(4)]
    assert [a["type"] for a in answers] == ["ack", "ack", "ack", "reject"]
    assert answers[3] == {
        "type": "reject",
        "id": "g-3",
        "reason": "connection_limit",
        "retry": False,
        "detail": "3 working parents on this connection",
    }
    other.send(order("o-1", qty=100))
    assert other.receive() == {"type": "ack", "id": "o-1"}
    metrics = router.metrics()
    assert metrics['smars_rejects_total{reason="connection_limit"}'] == 1
    # A slot of the connection frees up when one of its parents ends.
    router.admin("POST", "/kill", token=TOKEN)
    router.admin("POST", "/resume", token=TOKEN)
    assert [greedy.receive()["reason"] for _ in range(3)] == ["killed"] * 3
    venue.hold = False
    greedy.send(order("g-4", qty=100))
    assert [m["type"] for m in greedy.until(lambda m: m.get("leaves") == 0)] == ["ack", "fill"]


def test_the_load_generator_does_not_retry_a_connection_limit(router_factory, venue: FakeVenue):
    from market.loadgen import Config, LoadGen, invariant_holds

    venue.hold = True
    router = router_factory(max_working_per_connection=5)
    cfg = Config(targets=[f"127.0.0.1:{router.order_port}"], count=12, window=64, drain=0.5)
    result = asyncio.run(LoadGen(cfg).run())
    assert invariant_holds(result)
    assert result["rejected_by_reason"] == {"connection_limit": 7}
    assert result["retries"] == 0
    assert result["working"] == 5


def test_beyond_the_connection_cap_a_connection_is_told_closing_and_closed(router_factory):
    router = router_factory(max_order_connections=3)
    first, *_ = [router.client() for _ in range(3)]
    for c in router.clients:
        c.send(order(f"c-{id(c)}", qty=100))
        assert c.until(lambda m: m.get("leaves") == 0)[0]["type"] == "ack"  # all three served
    extra = router.client()
    assert extra.receive() == {"type": "closing", "reason": "too_many_connections"}
    assert closed_by_router(extra)
    assert router.admin("GET", "/health")[0] == 200
    first.close()
    router.clients.remove(first)

    def served() -> bool:
        client = OrderClient(router.order_port)
        try:
            client.send(order("late", qty=100))
            return client.receive()["type"] == "ack"
        finally:
            client.close()

    wait_for(served, 5, "a new connection to be served once one left")


def test_an_idle_connection_is_closed_but_one_with_working_parents_is_not(
    router_factory, venue: FakeVenue
):
    venue.hold = True
    router = router_factory(order_idle_s=0.3)
    working = router.client()
    working.send(order("w-1", qty=100))
    assert working.receive() == {"type": "ack", "id": "w-1"}
    idle = router.client()
    started = time.monotonic()
    assert closed_by_router(idle)
    assert 0.25 < time.monotonic() - started < 3
    # Silent for longer than the idle one, but it has a working parent: still served.
    working.send(order("w-2", qty=100))
    assert working.receive() == {"type": "ack", "id": "w-2"}
    event = router.wait_event("order_idle_closed")
    assert event["closed"] >= 1 and event["idle_s"] == 0.3


def test_a_flood_of_idle_order_connections_leaves_the_kill_switch_answering(router_factory):
    router = router_factory(max_order_connections=50)
    flood: list[socket.socket] = []
    try:
        for _ in range(300):
            flood.append(socket.create_connection(("127.0.0.1", router.order_port), timeout=5))
        started = time.monotonic()
        status, body = router.admin("POST", "/kill", token=TOKEN)
        assert (status, body["trading"]) == (200, "killed")
        assert router.admin("GET", "/health")[0] == 200
        assert time.monotonic() - started < 1
    finally:
        for sock in flood:
            with contextlib.suppress(OSError):
                sock.close()
