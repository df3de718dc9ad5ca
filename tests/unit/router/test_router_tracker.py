"""The core's cumulative-quantity tracker."""

from smars.tracker import Tracker


def test_remaining_counts_both_executed_and_outstanding_shares():
    t = Tracker(500)
    t.sent(200)
    assert t.remaining() == 300
    t.executed(100)
    assert (t.cum, t.outstanding, t.remaining()) == (100, 100, 300)


def test_remaining_never_goes_below_zero():
    t = Tracker(100)
    t.sent(300)
    assert t.remaining() == 0


def test_a_filled_parent_with_nothing_out_is_settled():
    t = Tracker(200)
    t.sent(200)
    assert not t.settled
    t.executed(200)
    assert t.settled
    assert t.leaves == 0


def test_executions_beyond_the_quantity_are_recorded_as_overfill():
    t = Tracker(100)
    t.sent(300)
    assert t.executed(100) == 0
    assert t.executed(100) == 100
    assert t.executed(100) == 100
    assert (t.cum, t.overfill, t.leaves) == (300, 200, 0)


def test_an_unanswered_child_frees_its_shares_for_resending():
    t = Tracker(100)
    t.sent(100)
    t.unanswered(100)
    assert (t.outstanding, t.remaining()) == (0, 100)
