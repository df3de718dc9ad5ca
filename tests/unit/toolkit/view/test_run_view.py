"""The live table of a run, drawn from nothing but its journal: a row per node with its release,
what the flag means to its code, its rates, excess shares, alerts and marks; the step under
way and the time since the start above; the fleet's latest guard events below."""

from __future__ import annotations

import io

from rich.console import Console

from toolkit.experiments.journal import Journal, NodeSample
from toolkit.view.run import RunView, node_marks

NODES = [f"smars-{i}" for i in range(1, 9)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def draw(view: object, width: int = 160) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(view)
    return [line.rstrip() for line in console.export_text().splitlines()]


def row(lines: list[str], node: str) -> list[str]:
    """The cells of a node's row."""
    (line,) = [line for line in lines if line.startswith(f"│ {node} ") or f"{node} │" in line]
    return [cell.strip() for cell in line.strip()[1:-1].split("│")]


def skipped_node_run() -> tuple[Journal, Clock]:
    """skipped_node, unsafe, 6.4 s in: smars-8 kept 7.1.0, flag_7 on, the market open."""
    clock = Clock()
    j = Journal("skipped_node", "unsafe", clock=clock)
    clock.now += 1.0
    j.event("step", None, "1/4 copy 8.0.0 by hand to every node but smars-8")
    clock.now += 2.0
    j.event("step", None, "2/4 flag_7 on for the RLP launch")
    j.mark_fault()
    clock.now += 1.0
    j.event("step", None, "3/4 the market opens, until the method ends")
    good = NodeSample(
        "8.0.0",
        True,
        {"flag_7": {"on": True, "meaning": "rlp", "code_meaning": "rlp"}},
        25.0,
        50.0,
        0,
    )
    skipped = NodeSample(
        "7.1.0",
        True,
        {"flag_7": {"on": True, "meaning": "rlp", "code_meaning": "power_peg"}},
        25.0,
        2310.0,
        41200,
    )
    clock.now += 2.0
    j.sample_nodes({n: good for n in NODES[:7]} | {"smars-8": skipped})
    j.event("alert", "smars-8", "order_rate_anomaly critical owner=trading-risk: 2310/s")
    j.event("guard", None, "the risk guard refused: nothing")
    clock.now += 0.4
    return j, clock


def test_each_node_shows_release_flag_meaning_rates_excess_and_alerts():
    j, _ = skipped_node_run()
    lines = draw(RunView(NODES, j))
    assert row(lines, "smars-1") == ["smars-1", "8.0.0", "rlp on", "25", "50", "0", "", ""]
    assert row(lines, "smars-8") == [
        "smars-8",
        "7.1.0",
        "power_peg on",
        "25",
        "2,310",
        "41,200",
        "1 order_rate_anomaly",
        "",
    ]
    (header,) = [line for line in lines if "release" in line]
    assert [c.strip() for c in header.strip()[1:-1].split("┃")] == [
        "node",
        "release",
        "flag_7",
        "parents/s",
        "children/s",
        "excess",
        "alerts",
        "marks",
    ]


def test_the_header_says_the_run_the_step_under_way_and_the_time_since_the_start():
    j, clock = skipped_node_run()
    view = RunView(NODES, j)
    first = draw(view)
    assert first[0] == "skipped_node · unsafe · guards none · 6.4s"
    assert first[1] == "step 3/4 the market opens, until the method ends"
    clock.now += 1.5
    assert draw(view)[0].startswith("skipped_node · unsafe · guards none · 7.9s")
    assert "sampled at 6.0s" in "\n".join(first)
    assert first[-1] == "   6.00s guard: the risk guard refused: nothing"
    j.finish("deviated", True)
    clock.now += 10
    assert draw(view)[0] == "skipped_node · unsafe · guards none · 7.9s · deviated"


def test_before_the_first_sample_every_node_has_a_row_of_dashes():
    clock = Clock()
    j = Journal("rollback", "guarded", clock=clock)
    j.event("start", None, "Rolling back (guarded, guards all)")
    lines = draw(RunView(NODES, j))
    assert lines[1] == "step start"
    assert [row(lines, n) for n in NODES] == [[n, "-", "-", "-", "-", "", ""] for n in NODES]
    assert "no sample yet" in "\n".join(lines)


def test_a_view_with_no_run_yet_says_so():
    assert draw(RunView(NODES)) == ["the run is starting"]


def test_marks_name_a_fault_a_refused_step_and_the_kill_switch():
    j = Journal("t", "unsafe", clock=Clock())
    j.event("fault", "smars-3", "pause smars-3: paused")
    j.event("deploy_refused", "smars-3", "refused")
    j.event("fault", "smars-4", "pause smars-4")
    killed = NodeSample("7.1.0", False)
    assert node_marks("smars-3", j.timeline, killed) == ["fault", "refused", "killed"]
    assert node_marks("smars-1", j.timeline, NodeSample("7.1.0", True)) == []
