"""The experiments on the real lab: unsafe they reproduce the 2012 damage, guarded they do not,
and the journal says which guard acted and when. The faulty node is smars-3 throughout, so that
nothing is tied to smars-8 (the files' default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import run_experiment
from toolkit.guards.sets import GUARDS
from toolkit.lab.lab import Lab

NODE = "smars-3"
ROOT = Path(__file__).resolve().parents[2]


def run(lab: Lab, exp_id: str, mode: str, **sets: str) -> dict:
    exp = load_experiment(exp_id, {"node": NODE, **sets})
    return run_experiment(lab, exp, mode).journal


def test_reused_flag_unsafe_runs_away_wherever_old_code_meets_the_flag(lab: Lab):
    journal = run(lab, "reused_flag", "unsafe", open_s="3")
    outcome = journal["outcome"]
    old = sorted(n for n, r in outcome["fleet_end"].items() if r == "7.1.0")
    new = sorted(n for n, r in outcome["fleet_end"].items() if r == "8.0.0")
    assert len(new) == 4 and len(old) == 4 and NODE in old  # the rollout was half done
    assert outcome["runaway_nodes"] == old
    assert outcome["excess_shares"] > 0
    assert journal["deviated"] is True and journal["expectations_met"] is True


def test_rollback_unsafe_spreads_the_runaway_to_all_eight(lab: Lab):
    journal = run(lab, "rollback", "unsafe", open_s="14")
    outcome = journal["outcome"]
    assert outcome["runaway_nodes"] == lab.settings.node_names
    assert set(outcome["fleet_end"].values()) == {"7.1.0"}
    stats = lab.venue_admin().get("/stats")["nodes"]
    assert all(stats[n]["excess_shares"] > 0 for n in lab.settings.node_names)
    kinds = [e["kind"] for e in journal["timeline"]]
    assert kinds.index("rollback") > kinds.index("flag")  # the rollback came with the flag on
    assert journal["expectations_met"] is True


@pytest.mark.parametrize("exp_id", ["skipped_node", "reused_flag", "rollback"])
def test_guarded_runs_leave_no_excess_share_and_name_the_guard_that_acted(lab: Lab, exp_id):
    journal = run(lab, exp_id, "guarded", open_s="3")
    assert journal["guards"] == dict.fromkeys(GUARDS, True)
    assert journal["outcome"]["excess_shares"] == 0
    assert journal["outcome"]["runaway_nodes"] == []
    acted = [e for e in journal["timeline"] if e["kind"] == "guard"]
    assert acted, journal["timeline"]
    assert acted[0]["t"] > 0 and " guard refused: " in acted[0]["detail"]
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["expectations_met"] is True
    assert lab.token not in json.dumps(journal)


def test_the_cli_runs_an_experiment_and_an_interrupt_still_runs_the_rollbacks(lab: Lab, tmp_path):
    """Ctrl-C in the middle of the method: the rollbacks (kill switch, flag off) still run and the
    journal says `interrupted`; the exit status is 130."""
    journal_path = tmp_path / "journal.json"
    env = {**os.environ, "KNIGHT_LAB": lab.settings.lab}
    knight = str(Path(sys.executable).with_name("knight"))
    argv = [knight, "experiment", "run", "skipped_node", "--mode", "unsafe"]
    argv += ["--set", f"node={NODE}", "--set", "open_s=20", "--journal", str(journal_path)]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    # Interrupt once the market is open (the flag is on and orders flow).
    while time.monotonic() < deadline:
        if lab.venue_admin().get("/stats")["child_orders"] > 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the market never opened: nothing to interrupt in the middle of")
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output.decode()[-2000:]
    journal = json.loads(journal_path.read_text())
    assert journal["status"] == "interrupted"
    kinds = [e["kind"] for e in journal["timeline"]]
    assert "rollback_kill" in kinds and "rollback_flag" in kinds
    assert {n.trading for n in lab.status().nodes} == {"killed"}
    flags = {n.name: n.flags.get("flag_7", {}).get("value") for n in lab.status().nodes}
    assert set(flags.values()) == {False}
