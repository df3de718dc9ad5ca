"""The venue admin HTTP server under slow and hostile clients: a request must arrive whole within a
deadline (silence is closed, half a request gets 408), at most `workers` requests are served at
once, and a Content-Length that is not one plain number gets 400 (docs/protocol.md, "Venue admin
HTTP"). The routes themselves are tested in test_market_venue."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from market import venue as vn
from market.adminhttp import REQUEST_TIMEOUT_S, content_length
from market.pricing import Book
from market_fixtures import TOKEN, VenueProcess, venue_in_thread

DEADLINE_S = 0.5
WORKERS = 2


@pytest.fixture(scope="module")
def admin() -> Iterator[vn.Venue]:
    """A venue in this process, with a short request deadline and two admin workers."""
    venue = vn.Venue(
        Book(cap=1000),
        "127.0.0.1",
        0,
        None,
        0,
        TOKEN,
        admin_workers=WORKERS,
        admin_timeout=DEADLINE_S,
    )
    with venue_in_thread(venue) as v:
        yield v


def dial(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def exchange(port: int, raw: bytes) -> tuple[int, dict]:
    """Send one raw request, return the status and the JSON body of the answer."""
    with dial(port) as sock:
        sock.sendall(raw)
        answer = read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"Content-Type: application/json" in head, head
    return status, json.loads(body)


def post_reset(length: str | list[str], body: bytes = b"") -> bytes:
    values = [length] if isinstance(length, str) else length
    headers = "".join(f"Content-Length: {v}\r\n" for v in values)
    return (
        f"POST /reset HTTP/1.1\r\nHost: venue\r\nAuthorization: Bearer {TOKEN}\r\n{headers}\r\n"
    ).encode() + body


def test_a_client_that_sends_nothing_is_closed_without_an_answer(admin: vn.Venue) -> None:
    with dial(admin.admin_port) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < DEADLINE_S + 5


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /sta",
        b"POST /reset HTTP/1.1\r\nHost: venue\r\n",
        post_reset("10", b'{"ca'),
    ],
    ids=["request-line", "headers", "body"],
)
def test_half_a_request_gets_408(admin: vn.Venue, partial: bytes) -> None:
    run = admin.book.run
    assert exchange(admin.admin_port, partial) == (408, {"error": "request not received in time"})
    assert admin.book.run == run


def test_a_client_trickling_bytes_is_cut_at_the_deadline(admin: vn.Venue) -> None:
    with dial(admin.admin_port) as sock:
        sock.sendall(b"GET /stats HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        # A header that never ends, a byte at a time, until the server answers (or 10 s).
        while not select.select([sock], [], [], 0.05)[0]:
            assert time.monotonic() - started < 10, "the server kept reading"
            sock.sendall(b"a")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.0 408 ")


@pytest.mark.parametrize(
    "length",
    ["-1", "abc", "1e3", "+5", "", "0x10", " -0", "1" * 19, "\u0665", ["2", "3"]],
    ids=[
        "negative",
        "word",
        "exponent",
        "signed",
        "empty",
        "hex",
        "negative-zero",
        "huge",
        "unicode-digit",
        "two-values",
    ],
)
def test_a_bad_content_length_gets_400(admin: vn.Venue, length: str | list[str]) -> None:
    run = admin.book.run
    status, body = exchange(admin.admin_port, post_reset(length, b"{}"))
    assert (status, body) == (400, {"error": "Content-Length must be one decimal number"})
    assert admin.book.run == run  # no reset


def test_a_bad_content_length_on_a_get_gets_400_too(admin: vn.Venue) -> None:
    raw = b"GET /stats HTTP/1.1\r\nContent-Length: -5\r\n\r\n"
    assert exchange(admin.admin_port, raw)[0] == 400


def test_a_body_over_64k_gets_413_and_the_same_length_twice_is_one(admin: vn.Venue) -> None:
    assert exchange(admin.admin_port, post_reset(str(64 * 1024 + 1))) == (
        413,
        {"error": "body too large"},
    )
    body = b'{"cap": 77}'
    status, answer = exchange(admin.admin_port, post_reset([str(len(body))] * 2, body))
    assert (status, answer["cap"]) == (200, 77)


def test_a_request_head_over_16k_gets_431(admin: vn.Venue) -> None:
    raw = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * (16 * 1024) + b"\r\n\r\n"
    assert exchange(admin.admin_port, raw)[0] == 431


def test_other_errors_of_the_standard_handler_are_json_too(admin: vn.Venue) -> None:
    assert exchange(admin.admin_port, b"PUT /reset HTTP/1.1\r\n\r\n")[0] == 501
    assert exchange(admin.admin_port, b"GET /health HTTP/7.0\r\n\r\n")[0] == 505


def test_at_most_workers_requests_are_served_at_once(admin: vn.Venue) -> None:
    base = threading.active_count()
    silent = [dial(admin.admin_port) for _ in range(WORKERS + 4)]
    try:
        # The workers take the first connections, the others wait in the backlog; a real request
        # made meanwhile waits its turn, and is served once the silent ones are dropped.
        peak = base
        with dial(admin.admin_port) as sock:
            sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            while not select.select([sock], [], [], 0.01)[0]:
                peak = max(peak, threading.active_count())
            assert read_all(sock).endswith(b'{"status":"ok"}')
        assert peak == base  # no thread per connection: the pool was there before
        assert sum(t.name == "venue-admin-request" for t in threading.enumerate()) == WORKERS
    finally:
        for s in silent:
            s.close()


def test_content_length_reads_one_plain_decimal_number() -> None:
    assert content_length(None) == 0
    assert content_length(["12"]) == content_length([" 12 ", "12"]) == 12
    assert content_length(["0"]) == 0
    assert content_length(["9" * 18]) == int("9" * 18)
    for bad in (["-1"], ["1.0"], ["12", "13"], [""], ["1 2"], ["9" * 19]):
        assert content_length(bad) is None, bad


def test_the_venue_process_drops_silent_and_partial_admin_clients(venue: VenueProcess) -> None:
    """The default deadline, on the venue as it runs in the lab."""
    timeout = REQUEST_TIMEOUT_S + 10
    silent = socket.create_connection(("127.0.0.1", venue.admin_port), timeout=timeout)
    partial = socket.create_connection(("127.0.0.1", venue.admin_port), timeout=timeout)
    with silent, partial:
        partial.sendall(b"GET /stats HTTP/1.1\r\n")
        assert read_all(silent) == b""
        assert read_all(partial).startswith(b"HTTP/1.0 408 ")
