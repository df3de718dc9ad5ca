"""A check that meets a node that cannot trade names why (killed, fenced, intake paused)."""

from trading import trading_problem


def test_a_node_that_trades_has_no_problem():
    assert trading_problem("smars-1", {"trading": "active", "intake": "open", "fleet": {}}) is None


def test_a_killed_node_is_named_with_the_way_back():
    problem = trading_problem("smars-3", {"trading": "killed", "intake": "open"})
    assert problem is not None
    assert problem.startswith("smars-3: the kill switch is thrown")
    assert "knight resume" in problem


def test_a_fenced_node_says_why_it_is_fenced():
    version = {"trading": "active", "intake": "open", "fleet": {"fenced": "tree abc != fleet def"}}
    assert trading_problem("smars-2", version) == (
        "smars-2: fenced, so it refuses every order: tree abc != fleet def"
    )


def test_a_paused_intake_is_named():
    problem = trading_problem("smars-4", {"trading": "active", "intake": "paused"})
    assert (
        problem
        == "smars-4: its intake is paused, so it takes no new order (`knight lab reset` opens it)"
    )
