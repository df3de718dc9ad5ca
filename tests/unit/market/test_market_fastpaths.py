"""The fast paths of the load generator and the venue read the exact lines a router writes without
JSON; these tests prove they give exactly what the JSON path gives, for lines that match and for
lines that almost do (spacing, key order, extra fields, escapes, out-of-range or odd numbers).

Each test runs the same input twice, once with the fast path switched off, and compares everything
the component reports: its result or answers, counts, execution log, series and metrics."""

from __future__ import annotations

import asyncio
import random
import types
from typing import Any

import pytest
from market import loadgen as lg
from market import venue as vn
from market.pricing import Book, Limits
from market.wire import format_cents, loads
from smars import wire as router_wire

# Tables small enough that random runs fill them.
_SMALL = Limits(nodes=2, parents=10, node_parents=7, symbols=2, releases=1, buckets=3)


# -- load generator ----------------------------------------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return None


def _answers(rng: random.Random, ids: list[str], qty: int) -> list[str]:
    """Answers a router, or a broken one, could send about these parent ids."""
    out = []
    for _ in range(len(ids) * 6):
        pid = rng.choice([*ids, "zz-1", ids[0] + "0"])
        q = rng.choice([qty, qty // 2, qty // 4, 1, qty * 2])
        r = rng.random()
        if r < 0.3:
            out.append(router_wire.ack(pid).decode().rstrip("\n"))
        elif r < 0.6:
            cum = rng.choice([q, qty, 0, qty * 3])
            leaves = rng.choice([0, max(qty - cum, 0), 5])
            price = rng.choice([20.01, 100.0, 1e16, 0.5, 1e-05, 10])
            out.append(router_wire.fill(pid, q, price, cum, leaves).decode().rstrip("\n"))
        elif r < 0.66:
            reason = rng.choice(["killed", "invalid", "overloaded"])
            out.append(router_wire.reject(pid, reason).decode().rstrip("\n"))
        elif r < 0.7:
            out.append(router_wire.cancelled(pid, 0, "killed").decode().rstrip("\n"))
        else:
            tail = '"price":1.0,"cum":1'
            out.append(
                rng.choice(
                    [
                        f'{{"type": "ack", "id": "{pid}"}}',
                        f'{{"id":"{pid}","type":"ack"}}',
                        f'{{"type":"ack","id":"{pid}","x":1}}',
                        f'{{"type":"ack","id":"{pid}"',
                        f'{{"type":"ack","id":"{pid}"}}x',
                        f'{{"type":"ack","id":"{pid}0}}',  # no closing quote
                        f'{{"type":"fill","id":"{pid}0,"qty":1,{tail},"leaves":0}}',
                        f'{{"type":"ack","id":"{pid[:-1]}\\u00{ord(pid[-1]):02x}"}}',
                        f'{{"type":"ack","id":"{pid}\\""}}',
                        f'{{"type":"fill","id":"{pid}","qty":-100,{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":{10**30},{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":true,{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":100.0,{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":"100",{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,{tail},"leaves":0.0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,{tail},"leaves":-0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,"price":NaN,"cum":1,"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,"price":020.1,"cum":1,"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,"price":1.,"cum":1,"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,"price":1.5E+2,"cum":1,"leaves":9}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,"price":1.0,"cum":01,"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":\uff15\uff10,{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,{tail},"leaves":0,"x":1}}',
                        f'{{"type":"fill","qty":50,"id":"{pid}",{tail},"leaves":0}}',
                        f'{{"type":"fill","id":"{pid}","qty":50,{tail},"leaves":7}}',
                        "[1,2]",
                        "null",
                        "garbage",
                        '{"type":"ack"}',
                        '{"type":"ack","id":5}',
                        f'{{"type":"ack","id":["{pid}"]}}',
                        f'{{"type":"weird","id":"{pid}"}}',
                        "[" * 5000,  # too long: a None line
                        "\udcff",  # not UTF-8 once encoded below: a None line
                    ]
                )
            )
    return out


def _run_loadgen(
    monkeypatch: pytest.MonkeyPatch,
    fast: bool,
    seed: int,
    prefix: str,
    lat_samples: int,
) -> tuple[dict, dict]:
    """One load generator on two fake connections, fed answers in random cuts on a fixed clock."""
    rng = random.Random(seed)
    qty = rng.choice([100, 400])
    count = rng.choice([20, 300, 2000])
    clock = [50.0]
    monkeypatch.setattr(lg, "_now", lambda: clock[0])
    monkeypatch.setattr(lg, "_LATENCY_SAMPLES", lat_samples)
    cfg = lg.Config(
        targets=["127.0.0.1:1", "127.0.0.1:2"],
        count=count,
        window=rng.choice([16, 4096]),
        seed=3,
        prefix=prefix,
        qty=qty,
        rlp_share=rng.choice([0.0, 0.3, 1.0]),
    )
    gen = lg.LoadGen(cfg)
    gen.fast_answers = fast and gen.fast_answers
    transports = [_Transport() for _ in gen.targets]
    for t, tr in zip(gen.targets, transports, strict=True):
        t.connection_made(tr)  # type: ignore[arg-type]
    gen.sending = gen.refill = True
    for t in gen.targets:
        gen.target_ready(t)
    lines = _answers(rng, [f"{prefix}-{i}" for i in range(1, count + 1)], qty)
    steps: list[tuple] = []
    for index in (0, 1):
        chosen = rng.sample(lines, len(lines) // 2)
        data = ("\n".join(chosen) + "\n").encode(errors="surrogateescape")
        start = 0
        while start < len(data):
            end = start + rng.choice([3, 100, 5000, 100_000])
            steps.append((index, data[start:end]))
            start = end
    rng.shuffle(steps)
    steps.insert(len(steps) // 2, (0, None))  # a reconnection midway
    for index, data in steps:
        clock[0] += 0.003
        target = gen.targets[index]
        if data is None:
            target.connection_lost(None)
            target.connection_made(transports[index])  # type: ignore[arg-type]
        else:
            target.data_received(data)
    for task in gen._retry_tasks:
        task.cancel()
    counts = {
        name: getattr(gen, name)
        for name in (
            "acked",
            "excess_shares",
            "fills",
            "final",
            "finished",
            "last_fill",
            "latencies",
            "overfilled",
            "shares_filled",
            "stray",
            "working",
            "_lat_seen",
            "_lat_stride",
        )
    }
    parents = gen.parents
    counts["parents"] = (parents.state, parents.cum, parents.reason, parents.sent_at)
    counts["targets"] = [(t.acked, t.inflight, t.epoch) for t in gen.targets]
    counts["sent"] = [b"".join(tr.out) for tr in transports]
    return gen.result(clock[0]), counts


@pytest.mark.parametrize("seed", range(12))
def test_loadgen_fast_path_reads_every_answer_as_json_does(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    json_reads = [0]

    def counted(line: str) -> Any:
        json_reads[0] += 1
        return loads(line)

    monkeypatch.setattr(lg, "loads", counted)

    async def both() -> tuple:
        prefix = ["T1", "Lab12cdef", "a.b:c_d"][seed % 3]
        lat = [50_000, 7, 3][seed % 3]
        fast = _run_loadgen(monkeypatch, True, seed, prefix, lat)
        fast_reads, json_reads[0] = json_reads[0], 0
        slow = _run_loadgen(monkeypatch, False, seed, prefix, lat)
        assert fast_reads < json_reads[0]  # some lines took the fast path
        return fast, slow

    fast, slow = asyncio.run(both())  # a running loop: a retried order starts a task
    assert fast[1] == slow[1]
    assert fast[0] == slow[0]
    assert fast[0]["fills"] > 0 and fast[0]["stray"] > 0


def test_the_router_answers_take_the_loadgen_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [10.0]
    monkeypatch.setattr(lg, "_now", lambda: clock[0])
    gen = lg.LoadGen(lg.Config(targets=["h:1"], count=3, window=8, qty=100, prefix="P"))
    target = gen.targets[0]
    target.connection_made(_Transport())  # type: ignore[arg-type]
    gen.send_batch(target, 3, clock[0])
    json_reads: list[str] = []
    monkeypatch.setattr(lg, "loads", lambda line: json_reads.append(line))
    clock[0] = 10.5
    data = b"".join(
        [
            router_wire.ack("P-1"),
            router_wire.ack("P-2"),
            router_wire.fill("P-1", 60, 20.01, 60, 40),
            router_wire.fill("P-1", 40, 20.02, 100, 0),
            router_wire.fill("P-2", 100, 1e16, 100, 0),
            router_wire.fill("P-2", 100, 20.0, 200, 0),  # an overfill
        ]
    )
    target.data_received(data)
    assert json_reads == []
    result = gen.result(11.0)
    assert (result["acked"], result["filled"], result["fills"]) == (2, 2, 4)
    assert (result["overfilled"], result["excess_shares"], result["unanswered"]) == (1, 100, 1)
    assert result["latency_ms"]["p50"] == 500.0
    assert target.inflight == 1


def test_an_id_that_needs_escaping_turns_the_loadgen_fast_path_off() -> None:
    gen = lg.LoadGen(lg.Config(targets=["h:1"], prefix='a"b'))
    assert not gen.fast_answers
    assert lg.LoadGen(lg.Config(targets=["h:1"], prefix="L1.a:b_c-d")).fast_answers


@pytest.mark.parametrize("samples", [1, 2, 3, 5])
def test_latencies_sampled_in_bulk_are_those_sampled_one_by_one(
    monkeypatch: pytest.MonkeyPatch, samples: int
) -> None:
    monkeypatch.setattr(lg, "_LATENCY_SAMPLES", samples)
    rng = random.Random(samples)
    one = lg.LoadGen(lg.Config(targets=["h:1"]))
    bulk = lg.LoadGen(lg.Config(targets=["h:1"]))
    value = 0.0
    for _ in range(200):
        batch = []
        for _ in range(rng.choice([0, 1, 2, 7, 40])):
            value += 1
            batch.append(value)
            one.sample_latency(value)
        bulk.sample_latencies(batch)
        state = (one.latencies, one._lat_seen, one._lat_stride)
        assert (bulk.latencies, bulk._lat_seen, bulk._lat_stride) == state


# -- venue -------------------------------------------------------------------------------------


def _children(rng: random.Random, n: int) -> list[str]:
    """Child lines as a router writes them, and lines that almost are."""
    out = [router_wire.hello("smars-1", "7.1.0", "t").decode().rstrip("\n")]
    for i in range(n):
        parent = f"P-{rng.randrange(n // 3 + 1)}"
        sym = rng.choice(["KCG", "AAPL", "IBM", "ZZZZZZZZ"])
        side = rng.choice(["buy", "sell"])
        qty = rng.choice([100, 50, 1000, 1, 1_000_000])
        pqty = rng.choice([100, 200, 1_000_000])
        strat = rng.choice(["sor", "power_peg", "x" * 40, "r\u00e9", ""])
        if rng.random() < 0.7:
            line = router_wire.child(i, parent, pqty, sym, side, qty, strat)
            out.append(line.decode().rstrip("\n"))
            continue
        head = f'{{"type":"child","id":{i},"parent":"{parent}","pqty":{pqty}'
        good = f'"symbol":"{sym}","side":"{side}","qty":{qty}'
        rest = f'"symbol":"{sym}","side":"{side}"'
        out.append(
            rng.choice(
                [
                    f'{{"type": "child", "id": {i}, "parent": "{parent}", "pqty": {pqty}, '
                    f'"symbol": "{sym}", "side": "{side}", "qty": {qty}, "strategy": "s"}}',
                    f"{head},{good}}}",  # no strategy: "unknown"
                    f'{head},{good},"strategy":"s","x":1}}',
                    f'{{"id":{i},"type":"child","parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":-{i},"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":-0,"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":{"9" * 300},"parent":"{parent}","pqty":{pqty},'
                    f'{good},"strategy":"s"}}',
                    f'{{"type":"child","id":1.0,"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":0{i},"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":-0{i},"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":true,"parent":"{parent}","pqty":{pqty},{good},'
                    f'"strategy":"s"}}',
                    f'{head},{rest},"qty":true,"strategy":"s"}}',
                    f'{head},{rest},"qty":0,"strategy":"s"}}',
                    f'{head},{rest},"qty":-5,"strategy":"s"}}',
                    f'{head},{rest},"qty":1000001,"strategy":"s"}}',
                    f'{head},{rest},"qty":{"9" * 100},"strategy":"s"}}',
                    f'{head},{rest},"qty":05,"strategy":"s"}}',
                    f'{head},{rest},"qty":5.0,"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"{parent}","pqty":1000001,{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"{parent}","pqty":false,{good},'
                    f'"strategy":"s"}}',
                    f'{head},"symbol":"{sym}","side":"bu\\u0079","qty":5,"strategy":"s"}}',
                    f'{head},"symbol":"{sym}","side":"Buy","qty":5,"strategy":"s"}}',
                    f'{head},"symbol":"K\\u0043G","side":"buy","qty":5,"strategy":"s"}}',
                    f'{head},"symbol":"kcg","side":"buy","qty":5,"strategy":"s"}}',
                    f'{head},"symbol":"ABCDEFGHI","side":"buy","qty":5,"strategy":"s"}}',
                    f'{head},"symbol":"","side":"buy","qty":5,"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"P\\u002d1","pqty":5,{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"{"p" * 65}","pqty":5,{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"{"p" * 64}","pqty":5,{good},'
                    f'"strategy":"s"}}',
                    f'{{"type":"child","id":{i},"parent":"a b","pqty":5,{good},"strategy":"s"}}',
                    f'{head},{good},"strategy":"s\\"q"}}',
                    f'{head},{good},"strategy":"s\\u0001"}}',
                    f'{head},{good},"strategy":"tab\there"}}',
                    f'{head},{good},"strategy":5}}',
                    f'{head},{good},"strategy":null}}',
                    f'{{"type":"hello","node":"smars-{rng.randrange(3)}","release":"8.0.0"}}',
                    '{"type":"hello","node":"bad node","release":"8.0.0"}',
                    "not json",
                    "[]",
                    '{"type":"child"}',
                    "[" * 3000,
                    "[" * 5000,  # too long: a None line
                ]
            )
        )
    return out


def _run_venue(
    monkeypatch: pytest.MonkeyPatch, fast: bool, seed: int
) -> tuple[dict[str, Any], list[float]]:
    """The venue fed random cuts of the lines on a fixed clock; fast=False is the reference: no
    fast path, and one line per data_received."""
    rng = random.Random(seed)
    lines = _children(rng, rng.choice([50, 400, 2000]))
    data = ("\n".join(lines) + "\n").encode()
    clock = [1000.0]
    monkeypatch.setattr(vn, "time", types.SimpleNamespace(time=lambda: clock[0]))
    monkeypatch.setattr(vn, "_log", lambda *a, **k: None)
    if not fast:
        monkeypatch.setattr(vn, "_child_head", lambda line: None)
    book = Book(
        cap=rng.choice([10**9, 300, 37]),
        clock=lambda: clock[0],
        keep=rng.choice([10**6, 7]),
        limits=rng.choice([Limits(), _SMALL]),
    )
    book.reset(now=clock[0])
    transport = _Transport()
    conn = vn.RouterConnection(vn.Venue(book))
    conn.connection_made(transport)  # type: ignore[arg-type]
    start = 0
    while start < len(data):
        end = start + rng.choice([1, 7, 100, 5000, 100_000])
        clock[0] += 0.07
        if fast:
            conn.data_received(data[start:end])
        else:
            # One line per call, as the venue answered before it batched its executions.
            for piece in data[start:end].splitlines(keepends=True):
                conn.data_received(piece)
        start = end
    monkeypatch.undo()
    run = book.run
    stats = book.stats(clock[0])
    page = book.execution_page(0, 10**9)
    return {
        "answers": b"".join(transport.out),
        "stats": stats | {"run": None},
        "executions": page | {"run": None},
        "series": book.series(),
        "metrics": vn.render_metrics(book).replace(run, "RUN"),
    }, [book.executions, book.messages]


@pytest.mark.parametrize("seed", range(12))
def test_venue_answers_every_line_as_the_json_path_one_line_at_a_time_does(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    fast, counts = _run_venue(monkeypatch, True, seed)
    slow, counts_slow = _run_venue(monkeypatch, False, seed)
    assert counts == counts_slow and counts[0] > 0
    for key in fast:
        assert fast[key] == slow[key], key


def test_the_router_child_lines_take_the_venue_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vn, "_log", lambda *a, **k: None)
    book = Book(cap=1000)
    conn = vn.RouterConnection(vn.Venue(book))
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(router_wire.hello("smars-2", "7.1.0", "t"))
    json_reads: list[str] = []
    monkeypatch.setattr(vn, "_loads", lambda line: json_reads.append(line))
    conn.data_received(
        router_wire.child(7, "L1-1", 100, "KCG", "buy", 100, "sor")
        + router_wire.child(8, "L1-1", 100, "KCG", "sell", 1_000_000, "power_peg")
    )
    assert json_reads == []
    assert book.stats()["nodes"]["smars-2"]["executions"] == 2
    answers = b"".join(transport.out).decode().splitlines()
    assert [a.split(',"price"')[0] for a in answers] == [
        '{"type":"exec","id":7,"parent":"L1-1","qty":100',
        '{"type":"exec","id":8,"parent":"L1-1","qty":1000000',
    ]


def test_exec_lines_carry_the_price_as_format_cents(monkeypatch: pytest.MonkeyPatch) -> None:
    prices = [1, 5, 9, 10, 99, 100, 101, 1000, 2001, 2010, 10_000, 999_999, 1_000_005]
    orders = [("P-1", 10, i, "KCG", "buy", 10, "sor") for i in range(len(prices))]
    conn = vn.RouterConnection(vn.Venue(Book()))
    monkeypatch.setattr(conn.book, "children", lambda *args: prices)
    for _ in range(2):  # the texts computed, then kept
        out: list[str] = []
        conn._execute(orders, 0.0, out.append)
        assert out == [
            f'{{"type":"exec","id":{i},"parent":"P-1","qty":10,"price":{format_cents(p)}}}\n'
            for i, p in enumerate(prices)
        ]


# -- the book ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_children_in_one_batch_are_children_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    cap, keep = rng.choice([10**9, 50, 13]), rng.choice([10**6, 20, 3])
    limits = rng.choice([Limits(), _SMALL])
    batched = Book(cap=cap, clock=lambda: 0.0, keep=keep, limits=limits)
    single = Book(cap=cap, clock=lambda: 0.0, keep=keep, limits=limits)
    batched.reset(now=0.0)
    single.reset(now=0.0)
    now, child = 0.0, 0
    for _ in range(60):
        now += rng.choice([0.0, 0.01, 0.3, 5.0])
        node, release = rng.choice(
            [("smars-1", "7.1.0"), ("smars-2", "8.0.0"), ("smars-1", "8.0.0")]
        )
        orders = []
        for _ in range(rng.choice([1, 2, 5, 20])):
            child += 1
            orders.append(
                (
                    f"P-{rng.randrange(15)}",
                    rng.choice([100, 300]),
                    child,
                    rng.choice(["KCG", "IBM", "GE"]),
                    rng.choice(["buy", "sell"]),
                    rng.choice([1, 100, 5000]),
                    rng.choice(["sor", "power_peg"]),
                )
            )
        prices = batched.children(node, release, orders, now)
        assert prices == [single.child(node, release, *order, now) for order in orders]  # type: ignore[misc]
        if rng.random() < 0.1:
            batched.invalid(node)
            single.invalid(node)
    assert batched.capped == single.capped and batched.capped_at == single.capped_at
    assert batched.stats(now) | {"run": 0} == single.stats(now) | {"run": 0}
    assert batched.execution_page(0, 10**9) | {"run": 0} == single.execution_page(0, 10**9) | {
        "run": 0
    }
    assert batched.series() == single.series()
