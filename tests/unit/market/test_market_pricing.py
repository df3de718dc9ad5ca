"""The venue's book: prices, impact, P&L at fair value, excess shares, the cap, the series."""

from __future__ import annotations

import pytest
from market.pricing import (
    BAND,
    DECAY_S,
    EXECUTION_FIELDS,
    HALF_SPREAD_CENTS,
    IMPACT_PER_SHARE,
    Book,
    fair_cents,
)

T0 = 1_000_000.0


def book(cap: int = 1000) -> Book:
    return Book(cap=cap, clock=lambda: T0)


def child(b: Book, parent: str = "P1", qty: int = 100, side: str = "buy", **kw: object) -> int:
    args: dict = {
        "node": "smars-1",
        "release": "7.1.0",
        "parent": parent,
        "pqty": 500,
        "child": 1,
        "symbol": "KCG",
        "side": side,
        "qty": qty,
        "strategy": "sor",
        "now": T0,
    }
    args.update(kw)
    return b.child(**args)


def test_fair_value_is_deterministic_per_symbol_and_between_10_and_100_dollars() -> None:
    values = {s: fair_cents(s) for s in ("KCG", "AAPL", "MSFT", "A", "ZZZZZZZZ")}
    assert values == {s: fair_cents(s) for s in values}
    assert all(1000 <= v <= 10000 for v in values.values())
    assert len(set(values.values())) == len(values)


def test_a_buy_fills_at_the_ask_and_a_sell_at_the_bid() -> None:
    b = book()
    fair = fair_cents("KCG")
    assert b.quote("KCG", T0) == (fair - HALF_SPREAD_CENTS, fair + HALF_SPREAD_CENTS)
    assert child(b, side="buy", qty=1) == fair + 1
    assert child(b, side="sell", qty=1, symbol="KCG", now=T0 + 60) == fair - 1


def test_aggressive_buying_lifts_the_offer_in_proportion_to_quantity_and_decays_back() -> None:
    b = book()
    fair = fair_cents("KCG")
    child(b, qty=10_000)
    move = round(10_000 * IMPACT_PER_SHARE * fair)
    assert move > 0
    bid, ask = b.quote("KCG", T0)
    assert (bid, ask) == (fair - 1, fair + 1 + move)
    assert (bid + ask) / 2 == fair + move / 2  # the mid moved up
    # The next buy pays the lifted offer.
    assert child(b, qty=1) == fair + 1 + move
    # One time constant later about 37% of the move is left; after ten, none.
    _, ask_later = b.quote("KCG", T0 + DECAY_S)
    assert ask_later == fair + 1 + round(move * 0.3679)
    assert b.quote("KCG", T0 + 10 * DECAY_S) == (fair - 1, fair + 1)


def test_selling_pushes_the_bid_down_and_the_move_is_bounded_by_the_band() -> None:
    b = book(cap=10**6)
    fair = fair_cents("KCG")
    for _ in range(100):
        child(b, side="sell", qty=1_000_000)
    bid, ask = b.quote("KCG", T0)
    assert bid == fair - 1 - round(fair * BAND)
    assert ask == fair + 1


def test_a_round_trip_loses_money_at_fair_value() -> None:
    b = book()
    fair = fair_cents("KCG")
    buy = child(b, side="buy", qty=10_000)
    sell = child(b, side="sell", qty=10_000, now=T0 + 1)
    assert (buy, sell) == (fair + 1, fair - 1)
    stats = b.stats(now=T0 + 1)
    assert stats["nodes"]["smars-1"]["position"] == 0
    assert stats["pnl"] == -0.02 * 10_000
    assert stats["loss_usd"] == 200.0
    assert stats["symbols"]["KCG"]["pnl"] == -200.0


def test_every_trade_costs_at_least_the_half_spread_even_a_pumped_sell() -> None:
    b = book()
    child(b, side="buy", qty=1_000_000)  # lifts the offer a long way
    child(b, side="sell", qty=1_000_000)  # the bid did not move: no profit from the pump
    assert b.stats(now=T0)["pnl"] < -(2 * 1_000_000 * 0.01) + 0.01


def test_excess_shares_count_what_children_execute_beyond_each_parent_quantity() -> None:
    b = book()
    # P1 (500): 300 + 300 + 100 -> 200 excess; P2 (100): 100 + 100 -> 100; P3 (200): 100 -> 0.
    for qty in (300, 300, 100):
        child(b, parent="P1", pqty=500, qty=qty)
    for _ in range(2):
        child(b, parent="P2", pqty=100, qty=100)
    child(b, parent="P3", pqty=200, qty=100)
    # The same parent id on another node is another parent.
    child(b, parent="P1", pqty=500, qty=500, node="smars-2")
    stats = b.stats(now=T0)
    assert stats["excess_shares"] == 300
    assert stats["overfilled_parents"] == 2
    assert stats["nodes"]["smars-1"]["excess_shares"] == 300
    assert stats["nodes"]["smars-1"]["overfilled_parents"] == 2
    assert stats["nodes"]["smars-2"]["excess_shares"] == 0
    assert stats["shares"] == 1500


def test_positions_and_shares_are_kept_per_node_and_per_symbol() -> None:
    b = book()
    child(b, node="smars-1", symbol="KCG", side="buy", qty=300)
    child(b, node="smars-1", symbol="AAPL", side="sell", qty=100)
    child(b, node="smars-2", symbol="KCG", side="sell", qty=50, release="8.0.0")
    stats = b.stats(now=T0)
    n1, n2 = stats["nodes"]["smars-1"], stats["nodes"]["smars-2"]
    assert (n1["position"], n1["shares"], n1["executions"]) == (200, 400, 2)
    assert (n2["position"], n2["shares"], n2["releases"]) == (-50, 50, {"8.0.0": 1})
    assert n1["releases"] == {"7.1.0": 2}
    assert stats["symbols"]["KCG"]["position"] == 250
    assert stats["symbols"]["KCG"]["shares"] == 350
    assert stats["symbols"]["AAPL"]["position"] == -100
    fair_kcg, fair_aapl = fair_cents("KCG"), fair_cents("AAPL")
    # Node P&L at fair value: 300 bought at fair+1 (KCG), 100 sold at fair-1 (AAPL).
    assert n1["pnl"] == pytest.approx(-(300 + 100) * 0.01)
    assert stats["symbols"]["KCG"]["mid"] > fair_kcg / 100
    assert stats["symbols"]["AAPL"]["mid"] < fair_aapl / 100


def test_the_cap_refuses_every_child_after_it_is_reached() -> None:
    b = book(cap=3)
    assert all(child(b) > 0 for _ in range(3))
    assert b.capped
    assert child(b) == 0
    assert child(b, node="smars-2") == 0
    stats = b.stats(now=T0)
    assert stats["capped"] is True
    assert stats["executions"] == 3
    assert stats["messages"] == 5
    assert stats["rejects"] == {"cap": 2}
    assert stats["child_orders"] == 5
    assert stats["nodes"]["smars-2"]["rejected"] == 1


def test_invalid_children_count_against_the_cap() -> None:
    b = book(cap=2)
    b.invalid("smars-1")
    assert child(b) > 0
    assert b.capped
    assert b.stats(now=T0)["rejects"] == {"invalid": 1}


def test_reset_clears_everything_re_arms_the_cap_and_starts_a_new_run() -> None:
    b = book(cap=2)
    b.connect("smars-1")
    child(b)
    child(b)
    first = b.run
    run = b.reset(cap=10, now=T0 + 5)
    assert run == b.run != first
    stats = b.stats(now=T0 + 5)
    assert (stats["cap"], stats["capped"], stats["messages"], stats["executions"]) == (
        10,
        False,
        0,
        0,
    )
    assert stats["started_at"] == T0 + 5
    assert stats["symbols"] == {}
    assert b.execution_page(0)["executions"] == []
    assert b.series()["nodes"] == {}
    # A router still connected stays listed, with zero counts.
    assert stats["nodes"]["smars-1"]["connected"] is True
    assert stats["nodes"]["smars-1"]["executions"] == 0
    assert child(b) > 0
    with pytest.raises(ValueError):
        b.reset(cap=0)


def test_the_series_counts_child_orders_per_node_in_quarter_second_buckets() -> None:
    b = book()
    for dt in (0.0, 0.1, 0.24, 0.25, 1.0):
        child(b, now=T0 + dt)
    child(b, node="smars-2", now=T0 + 0.6)
    series = b.series()
    assert series["bucket_s"] == 0.25
    assert series["started_at"] == T0
    assert series["nodes"] == {"smars-1": [[0, 3], [1, 1], [4, 1]], "smars-2": [[2, 1]]}


def test_executions_are_recorded_with_their_node_release_and_strategy_and_paged() -> None:
    b = book()
    for i in range(5):
        child(b, child=i, side="sell" if i % 2 else "buy", strategy="power_peg", now=T0 + i)
    page = b.execution_page(since=0, limit=2)
    assert page["fields"] == list(EXECUTION_FIELDS)
    assert [r[0] for r in page["executions"]] == [1, 2]
    assert page["next"] == 2
    first = dict(zip(page["fields"], page["executions"][0], strict=True))
    fair = fair_cents("KCG")
    assert first == {
        "seq": 1,
        "t": T0,
        "node": "smars-1",
        "release": "7.1.0",
        "parent": "P1",
        "child": 0,
        "symbol": "KCG",
        "side": "buy",
        "qty": 100,
        "price": (fair + 1) / 100,
        "strategy": "power_peg",
    }
    rest = b.execution_page(since=page["next"], limit=100)
    assert [r[0] for r in rest["executions"]] == [3, 4, 5]
    assert b.execution_page(since=5)["executions"] == []
    assert b.execution_page(since=5)["next"] == 5


def test_the_execution_log_keeps_the_newest_when_it_outgrows_its_bound() -> None:
    b = Book(cap=1000, clock=lambda: T0, keep=10)
    for i in range(25):
        child(b, child=i)
    page = b.execution_page(0, 100)
    assert page["executions"][-1][0] == 25
    assert len(page["executions"]) <= 10
    assert b.stats(now=T0)["executions"] == 25
