"""The CLI's live view on a real terminal: a fake run fills a journal step by step in a
pseudo-terminal, and the screen, read through a terminal emulator, shows a row per node with
its release and flag, the step under way, and a time since the start that moves on its own
between two frames. A pipe gets no live view."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from pty_screen import Terminal

NODES = [f"smars-{i}" for i in range(1, 9)]

#: A run of skipped_node without a lab: the CLI's live view (`_shown`) on its journal, each
#: stage waiting for a line on stdin, so the test reads each frame before the next comes.
FAKE_RUN = textwrap.dedent(
    """
    import sys
    from toolkit import cli
    from toolkit.experiments.journal import Journal, NodeSample
    from toolkit.view.run import RunView

    NODES = [f"smars-{i}" for i in range(1, 9)]
    if not cli._live_wanted(no_live="--no-live" in sys.argv):
        print("plain")
        sys.exit(0)

    def flag(code, on=True, meaning="rlp"):
        return {"flag_7": {"on": on, "meaning": meaning, "code_meaning": code}}

    view = RunView(NODES)
    journal = Journal("skipped_node", "unsafe")
    with cli._shown("skipped_node", view) as say:
        view.observe(journal)
        journal.event("step", None, "1/4 copy 8.0.0 by hand to every node but smars-8")
        baseline = NodeSample("7.1.0", True, flag("power_peg", False, "power_peg"), 0.0, 0.0, 0)
        journal.sample_nodes({n: baseline for n in NODES})
        sys.stdin.readline()
        journal.event("step", None, "3/4 the market opens, until the method ends")
        journal.mark_fault()
        good = NodeSample("8.0.0", True, flag("rlp"), 25.0, 50.0, 0)
        skipped = NodeSample("7.1.0", True, flag("power_peg"), 25.0, 2310.0, 41200)
        journal.sample_nodes({n: good for n in NODES[:7]} | {"smars-8": skipped})
        say("the market is open")
        sys.stdin.readline()
    """
)


def _elapsed(screen: str) -> str:
    found = re.search(r"guards none · (\d+\.\d)s", screen)
    assert found, screen
    return found.group(1)


def _row(screen: str, node: str) -> list[str]:
    (line,) = [line for line in screen.splitlines() if re.match(rf"\s*│ {node} ", line)]
    return [cell.strip() for cell in line.strip()[1:-1].split("│")]


def test_the_live_view_draws_each_node_the_step_and_a_moving_clock_on_a_terminal():
    term = Terminal([sys.executable, "-c", FAKE_RUN])
    try:
        first = term.wait_for(
            lambda s: "1/4 copy 8.0.0" in s and all(f"│ {n} " in s for n in NODES),
            "the first stage with a row per node",
        )
        assert [_row(first, n)[:3] for n in NODES] == [[n, "7.1.0", "power_peg off"] for n in NODES]
        # No event comes now: the view is redrawn on its own, the clock moves.
        before = _elapsed(first)
        moved = term.wait_for(lambda s: _elapsed(s) != before, "the time since the start move")
        assert float(_elapsed(moved)) > float(before)
        term.type("\n")
        second = term.wait_for_text(r"step 3/4 the market opens")
        second = term.wait_for(lambda s: "power_peg on" in s, "the skipped node's flag")
        assert _row(second, "smars-8") == [
            "smars-8",
            "7.1.0",
            "power_peg on",
            "25",
            "2,310",
            "41,200",
            "",
            "",
        ]
        assert _row(second, "smars-1")[:3] == ["smars-1", "8.0.0", "rlp on"]
        assert "the market is open" in second  # a line said is printed above the table
        term.type("\n")
        assert term.finish() == 0
        assert "step 3/4 the market opens" in term.screen()  # the last frame stays
    finally:
        term.kill()


def test_no_live_or_a_pipe_gets_the_plain_lines():
    term = Terminal([sys.executable, "-c", FAKE_RUN, "--no-live"])
    try:
        assert term.finish() == 0
        assert term.screen().strip() == "plain"
    finally:
        term.kill()
    piped = subprocess.run(
        [sys.executable, "-c", FAKE_RUN], capture_output=True, text=True, timeout=120
    )
    assert piped.stdout == "plain\n"


#: `knight faults` or `knight experiment matrix` without a lab: the campaign's schedules and the
#: matrix's runs end one per line typed on stdin.
FAKE_WORK = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from types import SimpleNamespace
    from toolkit import cli
    from toolkit.chaos import campaign
    from toolkit.experiments import matrix
    from toolkit.experiments.journal import Journal

    settings = SimpleNamespace(reports=Path(tempfile.mkdtemp()), node_names=["smars-1"])
    cli._lab = lambda: SimpleNamespace(settings=settings)

    def run_campaign(lab, seed, count, progress):
        for n in range(count):
            sys.stdin.readline()
            progress(SimpleNamespace(ok=True, schedule=f"stop smars-{n + 1} at flip",
                                     status="rolled_back", lost_orders=0))
        doc = {"schedules": count, "mixed_end_states": 0, "lost_orders": 0, "statuses": {}}
        return SimpleNamespace(to_json=lambda: doc, interrupted=False, mixed=0, lost_orders=0)

    def run_matrix(lab, chosen, say, observe):
        for column in ("none", "atomic"):
            journal = Journal("skipped_node", "unsafe")
            observe(journal)
            say(f"skipped_node with {column}")
            sys.stdin.readline()
            journal.finish("deviated", True)
        return matrix.Matrix(["none"], {"skipped_node": {"none": 0}})

    campaign.run_campaign = run_campaign
    matrix.run_matrix = run_matrix
    cli.main(sys.argv[1:], prog_name="knight")
    """
)


def test_the_fault_campaign_counts_schedules_done_and_the_time_left():
    term = Terminal([sys.executable, "-c", FAKE_WORK, "faults", "--count", "4"])
    try:
        term.wait_for_text(r"fault campaign, seed 2012: 0/4 schedules · \d+s · estimating")
        term.type("\n")
        shown = term.wait_for_text(r"1/4 schedules · \d+s · about \d+s left")
        assert "1/4 stop smars-1 at flip: rolled_back, lost 0 — ok" in shown  # the plain line
        term.type("\n\n\n")
        assert term.finish() == 0
        assert re.search(r"4/4 schedules · \d+s · done", term.screen())
    finally:
        term.kill()


def test_the_matrix_counts_runs_done_above_the_run_under_way():
    argv = [
        sys.executable,
        "-c",
        FAKE_WORK,
        "experiment",
        "matrix",
        "--experiments",
        "skipped_node",
    ]
    term = Terminal(argv)
    try:
        shown = term.wait_for_text(r"skipped_node · unsafe · guards none")
        assert re.search(r"matrix: 0/8 runs · \d+s · estimating the time left", shown), shown
        assert "│ smars-1 " in shown
        term.type("\n")
        term.wait_for_text(r"matrix: 1/8 runs · \d+s · about \d+")
        term.type("\n")
        assert term.finish() == 0
    finally:
        term.kill()
