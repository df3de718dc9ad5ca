"""Framing: newline-delimited JSON, 4096 bytes per line at most."""

from __future__ import annotations

import json

import pytest
from market.wire import MAX_LINE, LineSplitter, encode, format_cents, loads


def test_lines_split_across_reads_come_out_whole() -> None:
    s = LineSplitter()
    assert s.feed(b'{"a":1}\n{"b"') == ['{"a":1}']
    assert s.pending == 4
    assert s.feed(b":2}\n\n{") == ['{"b":2}']
    assert s.feed(b'"c":3}\n') == ['{"c":3}']
    assert s.pending == 0


def test_a_line_over_the_limit_comes_out_as_none_and_the_next_line_is_intact() -> None:
    s = LineSplitter()
    long = b"x" * MAX_LINE  # with its newline it is one byte over
    assert s.feed(long[:3000]) == []
    assert s.feed(long[3000:]) == []  # dropped as soon as it cannot fit
    assert s.pending == 0
    assert s.feed(b'tail\n{"ok":1}\n') == [None, '{"ok":1}']


def test_a_line_of_exactly_the_limit_with_its_newline_is_accepted() -> None:
    s = LineSplitter()
    body = b"y" * (MAX_LINE - 1)
    assert s.feed(body + b"\n" + b"z" * MAX_LINE + b"\n") == [body.decode(), None]


def test_the_limit_counts_bytes_not_characters() -> None:
    s = LineSplitter()
    line = "é" * 2048  # 2048 characters, 4096 bytes
    assert s.feed(line.encode() + b"\n" + b"a" * 5000 + b"\nok\n") == [None, None, "ok"]


def test_a_line_that_is_not_utf8_comes_out_as_none() -> None:
    assert LineSplitter().feed(b'{"a":1}\n\xff\xfe\n{"b":2}\n') == ['{"a":1}', None, '{"b":2}']


@pytest.mark.parametrize("text", ['{"a": [1, 2]}', '  {"a":1}  ', '"s"', "3", "[]"])
def test_loads_is_json_loads(text: str) -> None:
    assert loads(text) == json.loads(text)


@pytest.mark.parametrize("text", ['{"a":1} x', "{", "", "nan"])
def test_loads_rejects_what_json_loads_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_encode_is_one_compact_line() -> None:
    assert encode({"type": "ack", "id": "L1-1"}) == b'{"type":"ack","id":"L1-1"}\n'


def test_prices_are_written_with_two_decimals_from_cents() -> None:
    assert [format_cents(c) for c in (2001, 2000, 5, 10000)] == ["20.01", "20.00", "0.05", "100.00"]
