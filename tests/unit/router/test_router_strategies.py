"""The strategies, driven by a fake core: what each sends, and when it stops."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from smars.book import Parent
from smars.strategies import Strategy
from smars.strategies.power_peg import PowerPeg
from smars.strategies.rlp import Rlp
from smars.strategies.sor import Sor


class FakeCore:
    """The strategies' Context with a manual clock; children are recorded, not sent."""

    def __init__(self, slice_qty: int = 100, rate: int = 500, interval_s: float = 0.02) -> None:
        self.slice_qty = slice_qty
        self.peg_interval_s = interval_s
        self.peg_max_children_per_s = rate
        self.now = 0.0
        self.children: list[tuple[str, int]] = []
        self.cancels: list[tuple[str, str]] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.refuse = False
        self.sent_before: list[tuple[str, int]] = []  # the children execute_all executed

    def send_child(self, parent: Parent, qty: int) -> bool:
        if self.refuse or parent.done:
            return False
        parent.tracker.sent(qty)
        self.children.append((parent.id, qty))
        return True

    def cancel_parent(self, parent: Parent, reason: str) -> None:
        parent.done = True
        self.cancels.append((parent.id, reason))

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, callback))

    def time(self) -> float:
        return self.now

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.timers and min(t for t, _ in self.timers) <= end + 1e-9:
            self.timers.sort(key=lambda item: item[0])
            when, callback = self.timers.pop(0)
            self.now = when
            callback()
        self.now = end

    def execute_all(self, strategy: Strategy, parents: dict[str, Parent]) -> None:
        """The venue fills every child sent so far, in order."""
        pending, self.children = self.children, []
        for parent_id, qty in pending:
            parent = parents[parent_id]
            parent.tracker.executed(qty)
            strategy.on_execution(parent, qty)
        self.sent_before = pending


def parent(strategy: Strategy, order_id: str = "P1", qty: int = 250) -> Parent:
    return Parent(order_id, "KCG", "buy", qty, strategy)


def test_sor_slices_the_parent_at_once_and_sends_exactly_its_quantity():
    core = FakeCore(slice_qty=100)
    sor = Sor(core)
    p = parent(sor, qty=250)
    sor.on_parent(p)
    assert core.children == [("P1", 100), ("P1", 100), ("P1", 50)]
    core.execute_all(sor, {"P1": p})
    assert core.children == []
    assert p.tracker.cum == 250
    assert sor.is_finished(p)


@pytest.mark.parametrize("qty", [1, 99, 100, 101, 1000, 12345])
def test_sor_never_sends_more_than_the_parent(qty):
    core = FakeCore(slice_qty=100)
    sor = Sor(core)
    p = parent(sor, qty=qty)
    sor.on_parent(p)
    sent = [q for _, q in core.children]
    assert sum(sent) == qty
    assert max(sent) <= 100


def test_sor_resends_only_what_a_short_execution_left():
    core = FakeCore(slice_qty=100)
    sor = Sor(core)
    p = parent(sor, qty=100)
    sor.on_parent(p)
    core.children.clear()
    p.tracker.executed(60)  # the venue executed 60 of the 100 and answered for all
    p.tracker.unanswered(40)
    sor.on_execution(p, 60)
    assert core.children == [("P1", 40)]


def test_sor_cancels_a_parent_when_the_egress_refuses_everything():
    core = FakeCore()
    core.refuse = True
    sor = Sor(core)
    p = parent(sor)
    sor.on_parent(p)
    assert core.cancels == [("P1", "refused")]


def test_sor_cancels_on_a_venue_refusal():
    core = FakeCore()
    sor = Sor(core)
    p = parent(sor)
    sor.on_parent(p)
    sor.on_child_rejected(p, "cap")
    assert core.cancels == [("P1", "venue_cap")]


def test_rlp_sends_one_child_at_a_time_and_the_next_only_after_an_execution():
    core = FakeCore(slice_qty=100)
    rlp = Rlp(core)
    p = parent(rlp, qty=250)
    rlp.on_parent(p)
    assert core.children == [("P1", 100)]
    rlp.on_parent(p)  # a second nudge must not add a child while one is out
    assert core.children == [("P1", 100)]
    sizes = []
    for _ in range(5):
        sizes += [q for _, q in core.children]
        core.execute_all(rlp, {"P1": p})
    assert sizes == [100, 100, 50]
    assert p.tracker.cum == 250
    assert p.tracker.overfill == 0
    assert rlp.is_finished(p)


def test_rlp_never_overfills_even_when_executions_are_repeated():
    core = FakeCore(slice_qty=100)
    rlp = Rlp(core)
    p = parent(rlp, qty=100)
    rlp.on_parent(p)
    core.execute_all(rlp, {"P1": p})
    for _ in range(10):
        rlp.on_execution(p, 0)  # spurious callbacks after the fill
    assert core.children == []
    assert p.tracker.cum == 100


def test_power_peg_keeps_sending_after_the_parent_is_filled():
    core = FakeCore(slice_qty=100, rate=500, interval_s=0.02)
    peg = PowerPeg(core)
    p = parent(peg, qty=100)
    peg.on_parent(p)
    total = 0
    for _ in range(10):
        core.run_for(0.1)
        total += len(core.children)
        core.execute_all(peg, {"P1": p})
    assert p.tracker.cum == total * 100
    assert p.tracker.cum > 10 * p.qty  # far beyond the parent
    assert not peg.is_finished(p)
    assert all(q == 100 for _, q in core.sent_before)


def test_power_peg_children_are_the_slice_or_the_parent_if_smaller():
    core = FakeCore(slice_qty=100)
    peg = PowerPeg(core)
    small = parent(peg, "S", qty=30)
    peg.on_parent(small)
    core.run_for(0.1)
    assert {q for _, q in core.children} == {30}


def test_power_peg_output_is_bounded_per_second_and_round_robin():
    core = FakeCore(slice_qty=100, rate=500, interval_s=0.02)
    peg = PowerPeg(core)
    parents = {f"P{i}": parent(peg, f"P{i}", qty=100) for i in range(4)}
    for p in parents.values():
        peg.on_parent(p)
    core.run_for(1.0)
    assert len(core.children) == 500
    per_parent = Counter(pid for pid, _ in core.children)
    assert set(per_parent.values()) == {125}
    core.children.clear()
    core.run_for(2.0)
    assert len(core.children) == 1000


def test_power_peg_ignores_venue_refusals_and_stops_only_for_a_cancel():
    core = FakeCore(slice_qty=100, rate=100, interval_s=0.05)
    peg = PowerPeg(core)
    a, b = parent(peg, "A", qty=100), parent(peg, "B", qty=100)
    peg.on_parent(a)
    peg.on_parent(b)
    core.run_for(0.2)
    peg.on_child_rejected(a, "cap")
    assert core.cancels == []
    a.done = True  # the kill switch cancelled it
    core.children.clear()
    core.run_for(0.5)
    assert {pid for pid, _ in core.children} == {"B"}
    b.done = True
    core.run_for(0.1)
    assert core.timers == []  # nothing left to peg: the ticker stops
