"""The router's fast paths read the exact order line the load generator writes and the exact exec
line the venue writes without JSON; these tests prove they give exactly what the JSON path gives
(the same values of the same types, or the same rejection) for lines that match and for lines that
almost do: spacing, key order, extra or duplicate fields, escapes, odd or out-of-range numbers,
non-ASCII. The tracker's inlined overfill arithmetic is checked against its definition."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from smars import wire
from smars.tracker import Tracker


def _order_outcome(parse: Any, line: bytes) -> tuple:
    try:
        o = parse(line)
    except wire.Rejected as r:
        return ("rejected", r.reason, r.detail, r.order_id)
    values = (o.id, o.symbol, o.side, o.qty, o.rlp)
    return ("order", values, tuple(type(v) for v in values))


def _venue_outcome(parse: Any, line: bytes) -> tuple:
    try:
        msg = parse(line)
    except wire.VenueMessageError as e:
        return ("error", str(e))
    return ("msg", msg, tuple(type(v) for v in msg))


def _order(
    oid: str = "L1-42", sym: str = "KCG", side: str = "buy", qty: Any = 500, rlp: Any = "false"
):
    return (
        f'{{"type":"order","id":"{oid}","symbol":"{sym}","side":"{side}","qty":{qty},"rlp":{rlp}}}'
    )


CANONICAL_ORDERS = [
    _order(),
    _order(rlp="true"),
    _order(side="sell"),
    _order(qty=1),
    _order(qty=1_000_000),
    _order(oid="aZ09_.:-", sym="ABCDEFGH"),
    _order(oid="x" * 64, sym="A"),
    _order(oid="-", qty=100),
    '{"type":"order","id":"L1-42","symbol":"KCG","side":"buy","qty":500}',  # rlp omitted
]

ALMOST_ORDERS = [
    # Spacing, key order, layout.
    '{"type": "order", "id": "L1-42", "symbol": "KCG", "side": "buy", "qty": 500, "rlp": false}',
    " " + _order(),
    _order() + " ",
    _order() + "\t",
    _order() + "\r",
    _order().replace(",", ", ", 1),
    '{"id":"L1-42","type":"order","symbol":"KCG","side":"buy","qty":500,"rlp":false}',
    '{"type":"order","id":"L1-42","symbol":"KCG","side":"buy","rlp":false,"qty":500}',
    '{"type":"order","id":"L1-42","symbol":"KCG","side":"buy","qty":500,"rlp":false,}',
    '{"type":"order","id":"L1-42","symbol":"KCG","side":"buy","qty":500,"rlp":false',
    _order() + "}",
    _order() + "x",
    _order() + _order(),
    "",
    "{}",
    # Extra, unknown, missing and duplicate fields.
    _order()[:-1] + ',"price":1.5}',
    _order()[:-1] + ',"x":null}',
    _order()[:-1] + ',"qty":7}',
    _order()[:-1] + ',"qty":0}',
    _order()[:-1] + ',"rlp":true}',
    _order()[:-1] + ',"id":"L1-43"}',
    _order()[:-1] + ',"id":"bad id"}',
    '{"type":"order","type":"order","id":"L1-42","symbol":"KCG","side":"buy","qty":500}',
    '{"type":"order","id":"L1-42","symbol":"KCG","side":"buy"}',
    '{"id":"L1-42","symbol":"KCG","side":"buy","qty":500}',
    '{"type":"order","symbol":"KCG","side":"buy","qty":500}',
    # Escapes, which JSON reads as the same text (or not).
    _order(oid="L1\\u002d42"),
    _order(oid="L1-4\\u0032"),
    _order(sym="KC\\u0047"),
    _order(side="b\\u0075y"),
    '{"typ\\u0065":"order","id":"L1-42","symbol":"KCG","side":"buy","qty":500}',
    _order(oid='L1\\"42'),
    _order(oid="L1\\\\42"),
    _order(oid="L1/42"),
    _order(oid="L1\\/42"),
    # Ids, symbols and sides outside their rules.
    _order(oid=""),
    _order(oid="x" * 65),
    _order(oid="L1 42"),
    _order(oid="L1+42"),
    _order(sym=""),
    _order(sym="kcg"),
    _order(sym="ABCDEFGHI"),
    _order(sym="KC1"),
    _order(side="BUY"),
    _order(side="short"),
    _order(side=""),
    '{"type":"cancel","id":"L1-42","symbol":"KCG","side":"buy","qty":500}',
    '{"type":"ORDER","id":"L1-42","symbol":"KCG","side":"buy","qty":500}',
    # Quantities: leading zeros, signs, range, types.
    _order(qty="0"),
    _order(qty="00"),
    _order(qty="0500"),
    _order(qty="-0"),
    _order(qty="-1"),
    _order(qty="-500"),
    _order(qty="+500"),
    _order(qty="1000001"),
    _order(qty="9999999"),
    _order(qty="10000000"),
    _order(qty="1" + "0" * 30),
    _order(qty="9" * 400),
    _order(qty="500.0"),
    _order(qty="5e2"),
    _order(qty="5E2"),
    _order(qty="500.5"),
    _order(qty="true"),
    _order(qty="false"),
    _order(qty="null"),
    _order(qty='"500"'),
    _order(qty="[500]"),
    _order(qty="NaN"),
    _order(qty="Infinity"),
    _order(qty="-Infinity"),
    _order(qty="0x1f4"),
    _order(qty="\u0665\u0660\u0660"),  # Arabic-Indic digits: int() would read them, JSON not
    _order(qty="５００"),  # fullwidth digits
    _order(qty="5_00"),
    # Booleans that are not JSON booleans.
    _order(rlp="1"),
    _order(rlp="0"),
    _order(rlp="True"),
    _order(rlp="null"),
    _order(rlp='"true"'),
    _order(rlp="tru"),
    # Non-ASCII, in and out of strings.
    _order(oid="L1-42é"),
    _order(oid="L1-４２"),
    _order(sym="KÇG"),
    _order(sym="ＫCG"),
    _order() + "\u00a0",
]

ORDER_BYTES = [
    b"\xff" + _order().encode(),
    _order(oid="L1-42\xe9").encode("latin-1"),
    _order().encode()[:-1] + b"\x00}",
    _order().encode().replace(b"KCG", b"KC\x00"),
    _order().encode().replace(b"L1-42", b"L1-42\xc3"),
    _order().encode() + b"\n",
    _order().encode("utf-16"),
]


def _mutations(rng: random.Random, base: str, n: int) -> list[bytes]:
    """Random one-character edits of a canonical line (deletions, insertions, replacements)."""
    alphabet = '{}[]",:0123456789-+.eE tfnrulasbyKCG\\\x00é'
    out = []
    for _ in range(n):
        i = rng.randrange(len(base) + 1)
        c = rng.choice(alphabet)
        op = rng.randrange(3)
        if op == 0:
            s = base[:i] + base[i + 1 :]
        elif op == 1:
            s = base[:i] + c + base[i:]
        else:
            s = base[:i] + c + base[i + 1 :]
        out.append(s.encode())
    return out


@pytest.mark.parametrize("text", CANONICAL_ORDERS)
def test_the_canonical_order_line_takes_the_fast_path_and_reads_as_json_does(text):
    line = text.encode()
    assert wire._order_match(line) is not None
    fast = _order_outcome(wire.parse_order, line)
    assert fast[0] == "order"
    assert fast == _order_outcome(wire._parse_order_json, line)


@pytest.mark.parametrize("line", [t.encode() for t in ALMOST_ORDERS] + ORDER_BYTES)
def test_an_order_line_that_almost_matches_reads_as_json_does(line):
    assert _order_outcome(wire.parse_order, line) == _order_outcome(wire._parse_order_json, line)


def test_every_quantity_near_the_limits_reads_as_json_does():
    for qty in itertools.chain(range(0, 20), range(999_990, 1_000_020), [9_999_999, 10**7]):
        for text in (str(qty), f"0{qty}", f"-{qty}", f"{qty}.0", f"{qty}e0"):
            line = _order(qty=text).encode()
            got = _order_outcome(wire.parse_order, line)
            assert got == _order_outcome(wire._parse_order_json, line), text


def test_random_edits_of_order_lines_read_as_json_does():
    rng = random.Random(7)
    matched = 0
    for base in (_order(), _order(rlp="true", side="sell", qty=1_000_000)):
        for line in _mutations(rng, base, 3000):
            matched += wire._order_match(line) is not None
            got = _order_outcome(wire.parse_order, line)
            assert got == _order_outcome(wire._parse_order_json, line), line
    assert matched > 100  # some edits are still canonical lines (another id, symbol or qty)


# -- the venue's exec line -----------------------------------------------------------------


def _exec(cid: Any = 17, parent: str = "L1-42", qty: Any = 100, price: Any = "20.01") -> str:
    return f'{{"type":"exec","id":{cid},"parent":"{parent}","qty":{qty},"price":{price}}}'


CANONICAL_EXECS = [
    _exec(),
    _exec(cid=0),
    _exec(cid=1, qty=1, price="0.01"),
    _exec(cid=10**17, qty=10**17, price="0.01"),
    _exec(parent="", price="123456789012345.99"),
    _exec(parent="aZ09_.:-" * 8, price="1.5"),
    _exec(price="20.10"),
    _exec(price="100.0000"),
]

ALMOST_EXECS = [
    '{"type": "exec", "id": 17, "parent": "L1-42", "qty": 100, "price": 20.01}',
    " " + _exec(),
    _exec() + " ",
    _exec() + "x",
    _exec()[:-1],
    '{"id":17,"type":"exec","parent":"L1-42","qty":100,"price":20.01}',
    '{"type":"exec","id":17,"parent":"L1-42","price":20.01,"qty":100}',
    '{"type":"exec","id":17,"qty":100,"price":20.01}',  # no parent: JSON accepts it
    '{"type":"exec","id":17,"parent":"L1-42","qty":100}',
    '{"type":"exec","parent":"L1-42","qty":100,"price":20.01}',
    _exec()[:-1] + ',"x":1}',
    _exec()[:-1] + ',"qty":5}',
    _exec()[:-1] + ',"price":30.5}',
    _exec()[:-1] + ',"id":18}',
    _exec()[:-1] + ',"type":"reject"}',
    '{"type":"exec","type":"exec","id":17,"parent":"L1-42","qty":100,"price":20.01}',
    '{"typ\\u0065":"exec","id":17,"parent":"L1-42","qty":100,"price":20.01}',
    '{"type":"\\u0065xec","id":17,"parent":"L1-42","qty":100,"price":20.01}',
    _exec(parent="L1\\u002d42"),
    _exec(parent='L1\\"42'),
    _exec(parent="L1 42"),
    _exec(parent="L1-42é"),
    _exec(parent="x" * 3000),
    # Child ids.
    _exec(cid="-0"),
    _exec(cid="-1"),
    _exec(cid="017"),
    _exec(cid="00"),
    _exec(cid=10**18),
    _exec(cid=10**30),
    _exec(cid="9" * 400),
    _exec(cid="17.0"),
    _exec(cid="1e1"),
    _exec(cid="true"),
    _exec(cid='"17"'),
    _exec(cid="null"),
    _exec(cid="NaN"),
    # Quantities.
    _exec(qty=0),
    _exec(qty="-0"),
    _exec(qty=-100),
    _exec(qty="0100"),
    _exec(qty="100.0"),
    _exec(qty="1e2"),
    _exec(qty=10**18),
    _exec(qty="9" * 400),
    _exec(qty="true"),
    _exec(qty='"100"'),
    _exec(qty="NaN"),
    _exec(qty="Infinity"),
    _exec(qty="\u0661\u0660\u0660"),
    # Prices.
    _exec(price="0.00"),  # the fast path's shape, refused as JSON refuses it
    _exec(price="0.0000"),
    _exec(price="20"),
    _exec(price="0"),
    _exec(price="-20.01"),
    _exec(price="-0.00"),
    _exec(price="020.01"),
    _exec(price="00.01"),
    _exec(price=".01"),
    _exec(price="20."),
    _exec(price="20.012345"),
    _exec(price="2.001e1"),
    _exec(price="2e400"),
    _exec(price="1" * 400 + ".0"),
    _exec(price="1" * 309 + ".00"),
    _exec(price="1234567890123456.00"),
    _exec(price="NaN"),
    _exec(price="Infinity"),
    _exec(price="-Infinity"),
    _exec(price="true"),
    _exec(price='"20.01"'),
    _exec(price="null"),
    _exec(price="20,01"),
    _exec(price="２0.01"),
    # Other kinds.
    '{"type":"reject","id":17,"parent":"L1-42","reason":"cap"}',
    '{"type":"reject","id":17,"parent":"L1-42"}',
    '{"type":"fill","id":17,"parent":"L1-42","qty":100,"price":20.01}',
    "[]",
    "",
]

EXEC_BYTES = [
    b"\xff" + _exec().encode(),
    _exec(parent="L1-42\xe9").encode("latin-1"),
    _exec().encode().replace(b"L1-42", b"L1\x0042"),
    _exec().encode() + b"\n",
]


@pytest.mark.parametrize("text", CANONICAL_EXECS)
def test_the_venue_exec_line_takes_the_fast_path_and_reads_as_json_does(text):
    line = text.encode()
    assert wire._exec_match(line) is not None
    fast = _venue_outcome(wire.parse_venue, line)
    assert fast[0] == "msg"
    assert fast == _venue_outcome(wire._parse_venue_json, line)


@pytest.mark.parametrize("line", [t.encode() for t in ALMOST_EXECS] + EXEC_BYTES)
def test_a_venue_line_that_almost_matches_reads_as_json_does(line):
    assert _venue_outcome(wire.parse_venue, line) == _venue_outcome(wire._parse_venue_json, line)


def test_every_venue_price_reads_as_json_does():
    # The venue writes cents with two decimals; float() of the text is what JSON reads.
    for cents in itertools.chain(range(0, 3000), range(10**9, 10**9 + 200), [10**17 - 1]):
        line = _exec(price=f"{cents // 100}.{cents % 100:02d}").encode()
        fast = _venue_outcome(wire.parse_venue, line)
        assert fast == _venue_outcome(wire._parse_venue_json, line), cents


def test_random_edits_of_exec_lines_read_as_json_does():
    rng = random.Random(11)
    matched = 0
    for line in _mutations(rng, _exec(), 4000):
        matched += wire._exec_match(line) is not None
        got = _venue_outcome(wire.parse_venue, line)
        assert got == _venue_outcome(wire._parse_venue_json, line), line
    assert matched > 100


# -- the tracker's overfill arithmetic -------------------------------------------------------


def test_tracker_executed_returns_the_overfill_it_adds_for_any_numbers():
    for qty, cum, out, exe in itertools.product(
        [0, 1, 100, 500],
        [0, 1, 99, 100, 101, 600],
        [0, 1, 100, 300],
        [-200, -1, 0, 1, 99, 100, 500],
    ):
        t = Tracker(qty)
        t.cum, t.outstanding = cum, out
        before = t.overfill
        added = t.executed(exe)
        assert added == t.overfill - before
        assert (t.cum, t.outstanding) == (cum + exe, max(out - exe, 0))
