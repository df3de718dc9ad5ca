"""The experiments on the real lab: unsafe they reproduce the 2012 damage, guarded they do not,
and the journal says which guard acted and when. The faulty node is smars-3 throughout (helpers.NODE),
so that nothing is tied to smars-8 (the files' default). knight's runs are the session's
(`own_run`): the Chaos Toolkit tests compare their verdicts with the same ones."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import NODE
from interrupt import at_a_terminal
from pty_screen import Terminal

from toolkit.guards.sets import GUARDS
from toolkit.lab.lab import Lab

ROOT = Path(__file__).resolve().parents[2]


def test_reused_flag_unsafe_runs_away_wherever_old_code_meets_the_flag(own_run):
    journal = own_run("reused_flag", "unsafe", open_s="3").journal
    outcome = journal["outcome"]
    old = sorted(n for n, r in outcome["fleet_end"].items() if r == "7.1.0")
    new = sorted(n for n, r in outcome["fleet_end"].items() if r == "8.0.0")
    assert len(new) == 4 and len(old) == 4 and NODE in old  # the rollout was half done
    assert outcome["runaway_nodes"] == old
    assert outcome["excess_shares"] > 0
    assert journal["deviated"] is True and journal["expectations_met"] is True


def _row(screen: str, node: str) -> list[str]:
    """The cells of a node's row in the live table."""
    (line,) = [line for line in screen.splitlines() if re.match(rf"\s*│ {node} ", line)]
    return [cell.strip() for cell in line.strip()[1:-1].split("│")]


def _elapsed(screen: str) -> float:
    found = re.search(r"guards none · (\d+\.\d)s", screen)
    assert found, screen
    return float(found.group(1))


def test_a_run_on_a_terminal_shows_the_fleet_live_and_ends_on_the_journals_last_sample(
    lab: Lab, tmp_path
):
    """Run by `knight experiment run` on a terminal: the live table shows the run as it goes,
    and its last frame is what the journal's last sample says."""
    path = tmp_path / "journal.json"
    argv = [str(Path(sys.executable).with_name("knight")), "experiment", "run", "reused_flag"]
    # Two nodes of eight switched when the flag goes on: a rollout part done, and a deploy
    # half as long as the file's default (four), which the suite's other run makes.
    argv += ["--mode", "unsafe", "--set", f"node={NODE}", "--set", "open_s=3", "--set", "done=2"]
    term = Terminal([*argv, "--journal", str(path)], {**os.environ, "KNIGHT_LAB": lab.settings.lab})
    try:
        first = term.wait_for(
            lambda s: "step " in s and all(f"│ {n} " in s for n in lab.settings.node_names),
            "the live table",
            timeout=300,
        )
        term.wait_for(lambda s: _elapsed(s) > _elapsed(first), "the time since the start move")
        # While the market is open: the node the rollout did not reach reads flag_7 as Power Peg.
        term.wait_for(lambda s: "step 3/4 the market opens" in s, "the open market", timeout=300)
        term.wait_for(lambda s: _row(s, NODE)[2] == "power_peg on", "flag_7 as Power Peg")
        assert term.finish(timeout=600) == 1, term.screen()  # deviated
        last = term.screen()
    finally:
        term.kill()
    journal = json.loads(path.read_text())
    outcome = journal["outcome"]
    old = sorted(n for n, r in outcome["fleet_end"].items() if r == "7.1.0")
    assert journal["deviated"] is True and outcome["runaway_nodes"] == old
    assert "step rollback 2/2 flag_7 off" in last and "· deviated" in last
    sampled = journal["series"]["samples"][-1]["nodes"]
    for node, seen in sampled.items():  # the last frame is the journal's last sample
        flag = seen["flags"]["flag_7"]
        assert flag["code_meaning"] == ("power_peg" if node in old else "rlp")
        shown = f"{flag['code_meaning']} {'on' if flag['on'] else 'off'}"
        assert _row(last, node)[:3] == [node, outcome["fleet_end"][node], shown]
        assert _row(last, node)[5] == f"{seen['excess_shares']:,}"
        assert _row(last, node)[7] == ("killed" if seen["trading"] is False else "")
        alerts = [e for e in journal["timeline"] if e["kind"] == "alert" and e["node"] == node]
        assert _row(last, node)[6].split(" ")[0] == (str(len(alerts)) if alerts else "")
    assert all(sampled[n]["excess_shares"] > 0 for n in old)


def test_rollback_unsafe_spreads_the_runaway_to_all_eight(lab: Lab, own_run):
    journal = own_run("rollback", "unsafe").journal
    outcome = journal["outcome"]
    # A runaway node is one whose child orders executed beyond their parents: all eight.
    assert outcome["runaway_nodes"] == lab.settings.node_names
    assert set(outcome["fleet_end"].values()) == {"7.1.0"}
    assert outcome["excess_shares"] > 0
    kinds = [e["kind"] for e in journal["timeline"]]
    assert kinds.index("rollback") > kinds.index("flag")  # the rollback came with the flag on
    assert journal["expectations_met"] is True


@pytest.mark.parametrize("exp_id", ["skipped_node", "reused_flag", "rollback"])
def test_guarded_runs_leave_no_excess_share_and_name_the_guard_that_acted(
    lab: Lab, own_run, exp_id
):
    journal = own_run(
        exp_id, "guarded", **({} if exp_id == "rollback" else {"open_s": "3"})
    ).journal
    assert journal["guards"] == dict.fromkeys(GUARDS, True)
    assert journal["outcome"]["excess_shares"] == 0
    assert journal["outcome"]["runaway_nodes"] == []
    acted = [e for e in journal["timeline"] if e["kind"] == "guard"]
    assert acted, journal["timeline"]
    assert acted[0]["t"] > 0 and " guard refused: " in acted[0]["detail"]
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["expectations_met"] is True
    assert not [secret for secret in lab.secrets if secret in json.dumps(journal)]


class _Knight:
    """`knight experiment run` in a session of its own, its output read line by line as it comes."""

    def __init__(self, lab: Lab, argv: list[str]) -> None:
        env = {**os.environ, "KNIGHT_LAB": lab.settings.lab}
        knight = str(Path(sys.executable).with_name("knight"))
        self.proc = subprocess.Popen(
            [knight, *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=at_a_terminal,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """The first line of output matching `pattern` (a regular expression)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
            if re.search(pattern, line):
                return line
        pytest.fail(f"no line matching {pattern!r}:\n{''.join(self.output)[-3000:]}")

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 120) -> str:
        self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.output.append(line)
        return "".join(self.output)


# Moments of the run, each named by the line the run prints as it gets there: during the reset
# (the first line), the deploy playbook, the flag playbook, the open market, and the rollbacks.
MOMENTS = {
    "reset": r"s start: ",
    "deploy": r"s reset: ",
    "flag": r"s deploy: ",
    "open market": r"s open: ",
    "rollbacks": r"s rollback_kill: ",
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_ctrl_c_at_any_moment_of_a_run_exits_130_and_still_runs_the_rollbacks(
    lab: Lab, tmp_path, moment
):
    """Ctrl-C at each of several moments of a run: the rollbacks (kill switch, flag off) run,
    the journal says `interrupted`, and the exit status is 130."""
    journal_path = tmp_path / "journal.json"
    argv = ["experiment", "run", "skipped_node", "--mode", "unsafe"]
    argv += ["--set", f"node={NODE}", "--set", "open_s=30", "--journal", str(journal_path)]
    knight = _Knight(lab, argv)
    knight.wait_for(MOMENTS[moment])
    knight.interrupt()
    output = knight.finish()
    assert knight.proc.returncode == 130, output[-3000:]
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted", output[-3000:]
    kinds = [e["kind"] for e in journal["timeline"]]
    assert "rollback_kill" in kinds and "rollback_flag" in kinds
    assert {n.trading for n in lab.status().nodes} == {"killed"}
    flags = {n.name: n.flags.get("flag_7", {}).get("value") for n in lab.status().nodes}
    assert set(flags.values()) == {False}
