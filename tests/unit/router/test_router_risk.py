"""The risk gate (guard 4) with the real book, egress and strategies on a hand-driven clock and
a fake venue: what it lets leave, what it refuses, and what it only counts with the guard off."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from router_fixtures import samples
from smars import wire
from smars.book import Book, Parent
from smars.config import Config, load_config
from smars.egress import Egress
from smars.errors import ConfigError
from smars.metrics import Snapshot, render
from smars.risk import Limits, RiskGate
from smars.state import ACTIVE, KILLED, State
from smars.strategies import discover


class FakeLoop:
    """What the book takes from the event loop: a clock and timers, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        self.timers.append((self.now + delay, self._seq, callback))

    def run_until(self, end: float) -> None:
        while self.timers:
            self.timers.sort()
            if self.timers[0][0] > end + 1e-9:
                break
            when, _, callback = self.timers.pop(0)
            self.now = when
            callback()
        self.now = end


class FakeVenue:
    """The venue outbox: records each child line; the test decides how the venue answers."""

    def __init__(self) -> None:
        self.children: list[dict[str, Any]] = []  # every child ever sent
        self.pending: list[dict[str, Any]] = []  # sent and not answered yet

    def add(self, line: bytes) -> None:
        child = json.loads(line)
        self.children.append(child)
        self.pending.append(child)

    def shares(self, parent_id: str) -> int:
        return sum(c["qty"] for c in self.children if c["parent"] == parent_id)


class Client:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def add(self, line: bytes) -> None:
        self.messages.append(json.loads(line))

    def cancels(self) -> dict[str, str]:
        return {m["id"]: m["reason"] for m in self.messages if m["type"] == "cancelled"}


class Lab:
    """One node's core: book, egress and risk gate, with the guard switch in `risk_on`."""

    def __init__(
        self,
        risk_on: bool,
        limits: Limits | None = None,
        peg_rate: int = 500,
        peg_interval_s: float = 0.02,
    ) -> None:
        self.risk_on = risk_on
        self.loop = FakeLoop()
        self.state = State("/nonexistent/state.json")  # only read or written when asked
        self.gate = RiskGate(
            limits or Limits(),
            state=self.state,
            enabled=lambda: self.risk_on,
            clock=self.loop.time,
        )
        self.egress = Egress(self.state, self.gate)
        self.venue = FakeVenue()
        self.egress.attach(self.venue)  # type: ignore[arg-type]
        self.book = Book(
            loop=self.loop,  # type: ignore[arg-type]
            egress=self.egress,
            strategies=discover(),
            slice_qty=100,
            peg_interval_s=peg_interval_s,
            peg_max_children_per_s=peg_rate,
        )
        self.client = Client()

    def order(self, order_id: str, qty: int, strategy: str = "sor", symbol: str = "KCG") -> Parent:
        order = wire.Order(order_id, symbol, "buy", qty, strategy != "sor")
        return self.book.open(order, self.book.strategies[strategy], self.client)  # type: ignore[arg-type]

    def answer(self, how: str = "fill", price: float = 10.0) -> None:
        """The venue answers every pending child: `fill`, `reject`, `alternate` (fill, reject,
        fill, ...) or `silent` (never answers)."""
        if how == "silent":
            return
        pending, self.venue.pending = self.venue.pending, []
        for i, child in enumerate(pending):
            if how == "reject" or (how == "alternate" and i % 2):
                self.book.on_child_rejected(child["id"], "cap")
            else:
                self.book.on_execution(child["id"], child["qty"], price)


# Child quantity per parent never exceeds the parent.


@pytest.mark.parametrize("venue_answers", ["fill", "silent", "reject", "alternate"])
def test_power_peg_with_the_gate_on_never_has_more_than_its_parent_out_or_executed(
    venue_answers,
):
    lab = Lab(risk_on=True)
    parent = lab.order("PP-1", qty=300, strategy="power_peg")
    rejected = 0
    for step in range(1, 41):  # 2 s of peg ticks, the venue answering every 50 ms
        lab.loop.run_until(step * 0.05)
        pending = [c["qty"] for c in lab.venue.pending]
        lab.answer(venue_answers)
        if venue_answers == "reject":
            rejected += sum(pending)
        elif venue_answers == "alternate":
            rejected += sum(pending[1::2])
        assert lab.venue.shares("PP-1") - rejected <= 300
        assert parent.committed <= 300
    assert lab.book.counts.shares <= 300
    assert lab.book.counts.overfill_shares == 0
    if venue_answers in ("fill", "silent"):
        assert lab.venue.shares("PP-1") == 300  # three children of 100, never a fourth
        assert [c["qty"] for c in lab.venue.children] == [100, 100, 100]
    if venue_answers == "fill":
        assert lab.book.counts.shares == 300
        assert parent.tracker.cum == 300
    assert lab.gate.refused["overfill"] > 0
    assert lab.gate.would_refuse == {"overfill": 0, "notional": 0, "rate": 0}


def test_a_filled_power_peg_parent_costs_one_refusal_per_tick_and_keeps_its_ticker():
    lab = Lab(risk_on=True, peg_rate=500, peg_interval_s=0.02)
    lab.order("PP-1", qty=300, strategy="power_peg")
    lab.loop.run_until(2.0)  # 100 ticks; the first sends 3 children and is refused the 4th
    assert len(lab.venue.children) == 3
    assert lab.gate.refused["overfill"] == 100  # one per tick: the tick stops at a refusal
    assert len(lab.loop.timers) == 1  # still pegging (it stops only for a cancel), not wedged
    assert "PP-1" in lab.book.working


def test_power_peg_with_the_gate_off_overfills_and_the_gate_counts_what_it_would_refuse():
    lab = Lab(risk_on=False)
    parent = lab.order("PP-1", qty=300, strategy="power_peg")
    for step in range(1, 21):  # 1 s, the venue filling everything
        lab.loop.run_until(step * 0.05)
        lab.answer("fill")
    sent = len(lab.venue.children)
    assert sent == 500  # peg_max_children_per_s for 1 s: the 2012 runaway, bounded by the lab
    assert lab.book.counts.shares == 500 * 100
    assert lab.book.counts.overfill_shares == 500 * 100 - 300
    assert parent.tracker.cum == 50_000
    assert lab.gate.refused == {"killed": 0, "overfill": 0, "notional": 0, "rate": 0}
    assert lab.gate.would_refuse["overfill"] == sent - 3
    assert parent.committed == 50_000  # the books are kept: switching the guard on is exact


def test_the_guard_switch_is_read_at_each_send():
    lab = Lab(risk_on=False)
    lab.order("PP-1", qty=100, strategy="power_peg")
    lab.loop.run_until(0.1)
    assert len(lab.venue.children) == 50
    lab.risk_on = True  # a reload turned the guard on
    lab.loop.run_until(0.2)
    assert len(lab.venue.children) == 50
    lab.risk_on = False
    lab.loop.run_until(0.3)
    assert len(lab.venue.children) > 100  # its own bucket filled up meanwhile
    assert lab.gate.would_refuse["overfill"] == len(lab.venue.children) - 1
    assert lab.gate.refused["overfill"] == 5  # one per tick while on


def test_sor_and_rlp_parents_fill_exactly_and_the_gate_refuses_nothing():
    lab = Lab(risk_on=True)
    lab.order("S-1", qty=250)
    lab.order("R-1", qty=250, strategy="rlp")
    for _ in range(5):
        lab.answer("fill")
    assert lab.venue.shares("S-1") == 250
    assert lab.venue.shares("R-1") == 250
    assert lab.book.working == {}
    assert lab.gate.refused == {"killed": 0, "overfill": 0, "notional": 0, "rate": 0}
    assert lab.gate.would_refuse == {"overfill": 0, "notional": 0, "rate": 0}
    assert lab.gate.exposure == 0.0  # both finished: nothing open


# Rejects release shares; executions do not.


def test_a_venue_reject_releases_its_shares_and_an_execution_does_not():
    lab = Lab(risk_on=True)
    sor = lab.book.strategies["sor"]
    parent = Parent("P-1", "KCG", "buy", 300, sor)  # driven by hand, not by the strategy
    send = lab.egress.send
    assert [send(parent, 100) for _ in range(4)] == [True, True, True, False]
    assert lab.egress.refusal == "risk_overfill"
    ids = [c["id"] for c in lab.venue.children]
    lab.egress.executed(ids[0], 100, 10.0)
    assert send(parent, 100) is False  # executed shares stay committed
    assert lab.egress.rejected(ids[1]) == (parent, 100)
    assert parent.committed == 200
    assert send(parent, 100) is True  # the rejected 100 may be sent again
    assert send(parent, 1) is False
    assert parent.committed == 300
    assert lab.gate.refused["overfill"] == 3


def test_a_child_that_does_not_fit_is_refused_whole_never_cut_down():
    lab = Lab(risk_on=True)
    parent = Parent("P-1", "KCG", "buy", 150, lab.book.strategies["sor"])
    assert lab.egress.send(parent, 100) is True
    assert lab.egress.send(parent, 100) is False
    assert lab.egress.send(parent, 50) is True
    assert [c["qty"] for c in lab.venue.children] == [100, 50]


def test_a_sor_parent_whose_child_the_venue_rejects_is_cancelled_and_releases_its_exposure():
    lab = Lab(risk_on=True, limits=Limits(reference_price=20.0))
    lab.order("S-1", qty=300)
    assert lab.gate.exposure == 300 * 20.0
    first = lab.venue.pending.pop(0)
    lab.book.on_child_rejected(first["id"], "cap")
    assert lab.client.cancels() == {"S-1": "venue_cap"}
    assert lab.gate.exposure == 0.0
    lab.answer("fill")  # the two still out come back after the cancel
    assert lab.book.counts.shares == 200
    assert lab.gate.exposure == 0.0


def test_children_lost_with_the_venue_stay_committed():
    lab = Lab(risk_on=True)
    parent = lab.order("PP-1", qty=200, strategy="power_peg")
    lab.loop.run_until(0.02)
    assert parent.committed == 200
    lab.book.on_venue_lost(lab.egress.detach())  # power peg parents stay working
    lab.egress.attach(lab.venue)  # type: ignore[arg-type]
    lab.loop.run_until(1.0)
    assert lab.venue.shares("PP-1") == 200  # the lost two may have executed: nothing more
    assert parent.tracker.outstanding == 0  # while the tracker counts them as gone


# Per-node order rate.


def test_the_rate_limit_refuses_beyond_the_bucket_and_refills_with_time():
    lab = Lab(risk_on=True, limits=Limits(max_child_per_s=100))  # a bucket of 10 (0.1 s)
    for i in range(12):
        lab.order(f"S-{i}", qty=100)
    assert len(lab.venue.children) == 10
    assert lab.gate.refused["rate"] == 2
    assert lab.client.cancels() == {"S-10": "risk_rate", "S-11": "risk_rate"}
    lab.loop.now = 0.05  # 5 more tokens
    for i in range(12, 20):
        lab.order(f"S-{i}", qty=100)
    assert len(lab.venue.children) == 15
    assert lab.gate.refused["rate"] == 5
    lab.loop.now = 10.0  # a long idle fills the bucket to its burst, never beyond
    for i in range(20, 40):
        lab.order(f"S-{i}", qty=100)
    assert len(lab.venue.children) == 25
    assert lab.gate.refused["rate"] == 15


def test_a_rate_refusal_with_children_out_waits_for_them_then_tries_again():
    lab = Lab(risk_on=True, limits=Limits(max_child_per_s=20))  # a bucket of 2
    parent = lab.order("S-1", qty=300)
    assert [c["qty"] for c in lab.venue.children] == [100, 100]
    assert lab.client.cancels() == {}  # two out: the parent waits for them
    lab.loop.now = 0.05  # one token back
    lab.answer("fill")  # the second execution leaves nothing out: sor sends the last 100
    assert [c["qty"] for c in lab.venue.pending] == [100]
    lab.answer("fill")
    assert parent.done
    assert lab.venue.shares("S-1") == 300
    assert lab.client.messages[-1] == {
        "type": "fill",
        "id": "S-1",
        "qty": 100,
        "price": 10.0,
        "cum": 300,
        "leaves": 0,
    }


def test_with_the_guard_off_the_rate_limit_only_counts():
    lab = Lab(risk_on=False, limits=Limits(max_child_per_s=100))
    for i in range(12):
        lab.order(f"S-{i}", qty=100)
    assert len(lab.venue.children) == 12
    assert lab.gate.refused["rate"] == 0
    assert lab.gate.would_refuse["rate"] == 2


# Per-node notional.


def test_the_notional_limit_refuses_beyond_the_open_exposure_and_frees_it_as_parents_end():
    lab = Lab(risk_on=True, limits=Limits(max_notional=25_000.0, reference_price=100.0))
    lab.order("S-1", qty=100)
    lab.order("S-2", qty=100)
    assert lab.gate.exposure == 20_000.0  # 200 shares at the reference price
    lab.order("S-3", qty=100)
    assert lab.client.cancels() == {"S-3": "risk_notional"}
    assert lab.gate.refused["notional"] == 1
    lab.answer("fill", price=50.0)  # both fill and finish; KCG last traded at $50
    assert lab.gate.exposure == 0.0
    lab.order("S-4", qty=300)
    assert lab.gate.exposure == 15_000.0  # priced at the last execution now
    lab.order("S-5", qty=200)  # 15,000 + 10,000 fits exactly
    assert lab.gate.exposure == 25_000.0
    lab.order("S-6", qty=1, symbol="IBM")  # IBM never traded: $100 a share
    assert lab.client.cancels()["S-6"] == "risk_notional"
    assert lab.gate.refused["notional"] == 2


def test_notional_is_gross_over_buys_and_sells():
    lab = Lab(risk_on=True, limits=Limits(max_notional=15_000.0))
    lab.book.open(wire.Order("B", "KCG", "buy", 100, False), lab.book.strategies["sor"], None)
    lab.book.open(wire.Order("S", "KCG", "sell", 100, False), lab.book.strategies["sor"], None)
    assert lab.gate.exposure == 10_000.0
    assert lab.gate.refused["notional"] == 1


# Kill switch.


@pytest.mark.parametrize("risk_on", [True, False])
def test_the_kill_switch_refuses_every_child_whatever_the_guard_says(risk_on):
    lab = Lab(risk_on=risk_on)
    lab.state.trading = KILLED
    parent = Parent("P-1", "KCG", "buy", 300, lab.book.strategies["sor"])
    assert lab.egress.send(parent, 100) is False
    assert lab.egress.refusal == "killed"
    assert lab.venue.children == []
    assert parent.committed == 0
    lab.order("S-1", qty=100)
    assert lab.client.cancels() == {"S-1": "killed"}
    assert lab.gate.refused == {"killed": 2, "overfill": 0, "notional": 0, "rate": 0}
    lab.state.trading = ACTIVE
    assert lab.egress.send(parent, 100) is True


def test_power_peg_stops_at_the_kill_switch_and_goes_on_after_resume_within_its_parent():
    lab = Lab(risk_on=True)
    lab.order("PP-1", qty=300, strategy="power_peg")
    lab.state.trading = KILLED
    lab.loop.run_until(0.5)
    assert lab.venue.children == []
    assert lab.gate.refused["killed"] == 25  # one per tick
    lab.state.trading = ACTIVE
    lab.loop.run_until(1.0)
    assert lab.venue.shares("PP-1") == 300


def test_an_egress_built_without_a_gate_still_holds_the_kill_switch():
    state = State("/nonexistent/state.json")
    egress = Egress(state)
    venue = FakeVenue()
    egress.attach(venue)  # type: ignore[arg-type]
    parent = Parent("P-1", "KCG", "buy", 100, discover()["sor"](None))  # type: ignore[arg-type]
    assert egress.send(parent, 100) is True
    assert egress.send(parent, 100) is True  # no limits: the guard is off
    assert egress.gate.would_refuse["overfill"] == 1
    state.trading = KILLED
    assert egress.send(parent, 100) is False
    assert egress.gate.refused["killed"] == 1


# What the node shows.


def test_the_gate_snapshot_has_the_switch_limits_exposure_and_counts():
    lab = Lab(risk_on=True, limits=Limits(max_child_per_s=1000, reference_price=12.5))
    lab.order("PP-1", qty=100, strategy="power_peg")
    lab.loop.run_until(0.1)
    assert lab.gate.snapshot() == {
        "enabled": True,
        "limits": {
            "max_child_per_s": 1000,
            "max_notional": 250_000_000.0,
            "reference_price": 12.5,
            "child_burst": 100.0,
        },
        "exposure": 1250.0,
        "refused": {"killed": 0, "overfill": 5, "notional": 0, "rate": 0},
        "would_refuse": {"overfill": 0, "notional": 0, "rate": 0},
    }


def test_the_risk_series_render_in_the_metrics_text():
    on, off = Lab(risk_on=True), Lab(risk_on=False)
    for lab in (on, off):
        lab.order("PP-1", qty=100, strategy="power_peg")
        lab.loop.run_until(0.1)
    text = render(snapshot(on.gate))
    got = samples(text)
    assert "# TYPE smars_risk_refused_total counter" in text
    assert "# TYPE smars_risk_enabled gauge" in text
    assert got["smars_risk_enabled"] == "1"
    assert got['smars_risk_refused_total{reason="overfill"}'] == "5"  # one per tick
    assert got['smars_risk_refused_total{reason="killed"}'] == "0"
    assert got['smars_risk_would_refuse_total{reason="overfill"}'] == "0"
    assert got["smars_risk_exposure_dollars"] == "10000.0"  # 100 shares at $100
    got = samples(render(snapshot(off.gate)))
    assert got["smars_risk_enabled"] == "0"
    assert got['smars_risk_refused_total{reason="overfill"}'] == "0"
    assert got['smars_risk_would_refuse_total{reason="overfill"}'] == "49"  # 50 sent
    assert got["smars_risk_exposure_dollars"] == "500000.0"


def snapshot(gate: RiskGate) -> Snapshot:
    return Snapshot(
        node="smars-1",
        release="7.1.0",
        tree="abc",
        acked=1,
        rejects={},
        children={},
        executions=0,
        shares=0,
        overfill_shares=0,
        working=1,
        trading_active=True,
        intake_open=True,
        venue_connected=True,
        flags={},
        flag_errors=0,
        risk_enabled=gate.enabled,
        risk_refused=gate.refused,
        risk_would_refuse=gate.would_refuse,
        risk_exposure=round(gate.exposure, 2),
    )


# Configuration.


def write(tmp_path, doc) -> str:
    path = tmp_path / "router.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_the_risk_limits_default_to_bench_safe_values(tmp_path):
    config = load_config(write(tmp_path, {"node": "n"}))
    assert (
        config.risk_max_child_per_s,
        config.risk_max_notional,
        config.risk_reference_price,
    ) == (500_000, 250_000_000.0, 100.0)
    assert Limits() == Limits(
        max_child_per_s=Config.risk_max_child_per_s,
        max_notional=Config.risk_max_notional,
        reference_price=Config.risk_reference_price,
    )


def test_the_risk_limits_are_read_from_router_json(tmp_path):
    doc = {"node": "n", "risk_max_child_per_s": 200, "risk_max_notional": 5e6}
    config = load_config(write(tmp_path, {**doc, "risk_reference_price": 20}))
    assert (config.risk_max_child_per_s, config.risk_max_notional) == (200, 5_000_000.0)
    assert config.risk_reference_price == 20.0
    assert type(config.risk_reference_price) is float


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("risk_max_child_per_s", "500", "expected an integer, got string"),
        ("risk_max_child_per_s", 1.5, "expected an integer, got float"),
        ("risk_max_child_per_s", True, "expected an integer, got boolean"),
        ("risk_max_child_per_s", 0, "expected 1..100000000"),
        ("risk_max_notional", "1e9", "expected a number of dollars, got string"),
        ("risk_max_notional", None, "expected a number of dollars, got null"),
        ("risk_max_notional", False, "expected a number of dollars, got boolean"),
        ("risk_max_notional", 0, "expected more than 0"),
        ("risk_max_notional", -5.0, "expected more than 0"),
        ("risk_reference_price", [100], "expected a number of dollars, got array"),
        ("risk_reference_price", 0.0, "expected more than 0"),
        ("risk_reference_price", 2e6, "expected more than 0 and at most 1e+06 dollars"),
    ],
)
def test_a_bad_risk_limit_is_a_config_error_naming_the_key(tmp_path, key, value, message):
    path = write(tmp_path, {"node": "n", key: value})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: {key}: {message}" in str(caught.value)
