"""Framing and order validation: every reject reason of the protocol, and nothing hostile
raises anything but a documented rejection."""

from __future__ import annotations

import json

import pytest
from smars import wire
from smars.wire import LineBuffer, Rejected, parse_order

GOOD = {"type": "order", "id": "L1-42", "symbol": "KCG", "side": "buy", "qty": 500}


def line(**changes) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def rejection(raw: bytes) -> Rejected:
    with pytest.raises(Rejected) as caught:
        parse_order(raw)
    return caught.value


def test_a_valid_order_is_parsed_with_rlp_defaulting_to_false():
    order = parse_order(line())
    assert (order.id, order.symbol, order.side, order.qty, order.rlp) == (
        "L1-42",
        "KCG",
        "buy",
        500,
        False,
    )
    assert parse_order(line(rlp=True)).rlp is True


def test_every_allowed_id_character_is_accepted():
    assert parse_order(line(id="aZ09_.:-")).id == "aZ09_.:-"
    assert parse_order(line(id="x" * 64)).id == "x" * 64


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"type": "order"', "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"order"', "not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"qty": NaN}', "not JSON"),
        (b'{"qty": Infinity}', "not JSON"),
        (b"[" * 3000 + b"]" * 3000, "nested too deep"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "nested too deep"),
    ],
)
def test_lines_that_are_not_a_json_object_are_malformed(raw, detail):
    r = rejection(raw)
    assert (r.reason, r.detail, r.order_id) == ("malformed", detail, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price": 10.0}, "unknown field 'price'"),
        ({"type": ...}, "type"),
        ({"id": ...}, "id"),
        ({"symbol": ...}, "symbol"),
        ({"side": ...}, "side"),
        ({"qty": ...}, "qty"),
        ({"type": "cancel"}, "type"),
        ({"id": ""}, "id"),
        ({"id": "x" * 65}, "id"),
        ({"id": "bad id"}, "id"),
        ({"id": 42}, "id"),
        ({"symbol": "kcg"}, "symbol"),
        ({"symbol": "ABCDEFGHI"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"side": "short"}, "side"),
        ({"qty": 0}, "qty"),
        ({"qty": -5}, "qty"),
        ({"qty": 1_000_001}, "qty"),
        ({"qty": True}, "qty"),
        ({"qty": False}, "qty"),
        ({"qty": 100.0}, "qty"),
        ({"qty": "100"}, "qty"),
        ({"qty": None}, "qty"),
        ({"qty": [100]}, "qty"),
        ({"rlp": 1}, "rlp"),
        ({"rlp": "true"}, "rlp"),
    ],
)
def test_field_problems_are_invalid_and_name_the_field(changes, field):
    r = rejection(line(**changes))
    assert r.reason == "invalid"
    assert r.detail.startswith(field)


def test_a_reject_carries_the_id_when_it_could_be_read():
    assert rejection(line(qty=0)).order_id == "L1-42"
    assert rejection(line(id="no spaces", qty=0)).order_id is None


def test_quantity_bounds_are_inclusive():
    assert parse_order(line(qty=1)).qty == 1
    assert parse_order(line(qty=1_000_000)).qty == 1_000_000


def test_a_reject_message_says_whether_to_retry():
    for reason, retry in [("malformed", False), ("killed", False), ("intake_paused", True)]:
        doc = json.loads(wire.reject("A", reason))
        assert doc == {"type": "reject", "id": "A", "reason": reason, "retry": retry}
    assert json.loads(wire.reject(None, "invalid", "qty"))["detail"] == "qty"
    for reason in ("venue_down", "overloaded"):
        assert json.loads(wire.reject("A", reason))["retry"] is True


def test_hot_messages_are_valid_json():
    assert json.loads(wire.ack("L1-42")) == {"type": "ack", "id": "L1-42"}
    assert json.loads(wire.fill("A", 100, 20.01, 300, 200)) == {
        "type": "fill",
        "id": "A",
        "qty": 100,
        "price": 20.01,
        "cum": 300,
        "leaves": 200,
    }
    assert json.loads(wire.child(17, "L1-42", 500, "KCG", "buy", 100, "sor")) == {
        "type": "child",
        "id": 17,
        "parent": "L1-42",
        "pqty": 500,
        "symbol": "KCG",
        "side": "buy",
        "qty": 100,
        "strategy": "sor",
    }


def test_the_line_buffer_reassembles_lines_split_across_reads():
    buf = LineBuffer()
    assert buf.feed(b'{"a":') == []
    assert buf.feed(b"1}\n{") == [b'{"a":1}']
    assert buf.feed(b"}\n\n") == [b"{}", b""]


def test_a_line_of_exactly_the_limit_passes_and_one_byte_more_is_rejected():
    buf = LineBuffer()
    fits = b"x" * (wire.MAX_LINE - 1)
    assert buf.feed(fits + b"\n") == [fits]
    assert buf.feed(fits + b"x\nnext\n") == [None, b"next"]


def test_an_oversized_line_is_reported_once_and_discarded_without_buffering():
    buf = LineBuffer()
    assert buf.feed(b"x" * 5000) == [None]
    for _ in range(100):
        assert buf.feed(b"y" * 65536) == []  # dropped as it comes, not kept
    assert buf._partial == b""
    assert buf.feed(b"tail\nok\n") == [b"ok"]


def test_an_oversized_partial_line_grown_over_several_reads_is_caught():
    buf = LineBuffer()
    assert buf.feed(b"x" * 3000) == []
    assert buf.feed(b"x" * 1200) == [None]
    assert buf.feed(b"\nafter\n") == [b"after"]


def test_venue_messages_are_parsed_and_bad_ones_raise_a_venue_error():
    assert wire.parse_venue(b'{"type":"exec","id":3,"parent":"A","qty":100,"price":20.5}') == (
        "exec",
        3,
        100,
        20.5,
    )
    assert wire.parse_venue(b'{"type":"reject","id":3,"parent":"A","reason":"cap"}') == (
        "reject",
        3,
        "cap",
    )
    for bad in [
        b"nope",
        b"[]",
        b'{"type":"exec","id":"3","qty":1,"price":1}',
        b'{"type":"exec","id":3,"qty":0,"price":1}',
        b'{"type":"exec","id":3,"qty":1,"price":NaN}',
        b'{"type":"exec","id":3,"qty":true,"price":1}',
        b'{"type":"hello","id":3}',
        b"[" * 5000,
    ]:
        with pytest.raises(wire.VenueMessageError):
            wire.parse_venue(bad)
