"""The same experiment under both runners, on the real lab: `knight experiment run` and the real
`chaos run --rollback-strategy always` of its export reach the same verdict, for skipped_node,
reused_flag and rollback. Unsafe, both deviate, with excess shares on the same runaway nodes
and the same fleet at the end; guarded, neither does. The faulty node is set through the Chaos
Toolkit's own `--var`, as its users would; knight's runs are the session's (`own_run`), shared
with the tests of the experiments. `knight report` gives each `chaos run` its row, page and plot
beside knight's own run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import NODE

from toolkit.chaostoolkit.export import export_experiment
from toolkit.experiments.loader import load_experiment
from toolkit.lab.lab import Lab
from toolkit.report.build import build_report
from toolkit.report.format import fmt_int, runaway_text

CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent))
#: Experiment -> its `--set` values, as the tests of the experiments run it (and `--var` here).
SETS = {"skipped_node": {"open_s": 3}, "reused_flag": {"open_s": 3}, "rollback": {}}


def _runaway(exp_id: str, fleet_end: dict[str, str]) -> list[str]:
    """The nodes an unsafe run must find running away: the skipped node; every node the half-done
    rollout had not reached (still on 7.1.0); after the rollback with the flag on, all eight."""
    if exp_id == "skipped_node":
        return [NODE]
    if exp_id == "reused_flag":
        return sorted(n for n, release in fleet_end.items() if release == "7.1.0")
    return sorted(fleet_end)


def _chaos_run(lab: Lab, folder: Path, exp_id: str, mode: str) -> tuple[dict, int]:
    """The export of `exp_id` in `mode`, run by `chaos run`: its journal and exit status."""
    exported = export_experiment(load_experiment(exp_id), mode)
    path, journal = folder / f"{exp_id}-{mode}.json", folder / f"{exp_id}-{mode}-chaos.json"
    path.write_text(json.dumps(exported))
    variables = [f"node={NODE}", *(f"{k}:int={v}" for k, v in SETS[exp_id].items())]
    argv = [CHAOS, "--no-log-file", "run", str(path), "--rollback-strategy", "always"]
    argv += ["--journal-path", str(journal)]
    for variable in variables:
        argv += ["--var", variable]
    env = os.environ | {"KNIGHT_LAB": lab.settings.lab}
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, cwd=folder, env=env, check=False
    )
    assert journal.exists(), proc.stdout + proc.stderr
    return json.loads(journal.read_text()), proc.returncode


def _knight(journal: dict) -> dict:
    (entry,) = [e for e in journal.get("extensions", []) if e.get("name") == "knight"]
    assert entry["errors"] == []
    return entry


def _after(chaos: dict) -> list[tuple[str, object, bool]]:
    """The hypothesis after the method, as the Chaos Toolkit checked it (it stops at the first
    probe out of tolerance): (probe, value, within tolerance)."""
    probes = chaos["steady_states"]["after"]["probes"]
    return [(p["activity"]["name"], p["output"], p["tolerance_met"]) for p in probes]


# Two runs of an experiment (knight's, when no earlier test made it, and the chaos run), each a
# lab reset, deploys and playbooks: three minutes apiece were seen beside a load average of 30.
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("mode", ["unsafe", "guarded"])
@pytest.mark.parametrize("exp_id", list(SETS))
def test_chaos_run_of_the_export_reaches_knights_own_verdict(
    lab: Lab, own_run, tmp_path, exp_id, mode
):
    own = own_run(exp_id, mode, **{k: str(v) for k, v in SETS[exp_id].items()})
    ours = own.journal["outcome"]
    chaos, exit_status = _chaos_run(lab, tmp_path, exp_id, mode)
    theirs = _knight(chaos)["outcome"]
    assert chaos["deviated"] is own.journal["deviated"] is (mode == "unsafe")
    assert exit_status == (1 if mode == "unsafe" else 0)  # docs/chaostoolkit.md
    assert theirs["runaway_nodes"] == ours["runaway_nodes"]
    assert theirs["fleet_end"] == ours["fleet_end"]
    if mode == "unsafe":
        assert ours["runaway_nodes"] == _runaway(exp_id, ours["fleet_end"])
        assert theirs["excess_shares"] > 0 and ours["excess_shares"] > 0
        # The hypothesis after the method failed on the damage, as knight's did.
        (probe, value, met), *_ = _after(chaos)
        assert (probe, met) == ("excess_shares", False) and value > 0
        assert ("excess_shares", False) in {
            (p["probe"], p["ok"]) for p in own.journal["steady_state"]["after"]
        }
    else:
        assert theirs["excess_shares"] == ours["excess_shares"] == 0
        assert theirs["runaway_nodes"] == []
        assert all(met for _, _, met in _after(chaos))
        deploy, *stopped, close = chaos["run"]
        assert deploy["output"]["status"] == "refused" and deploy["output"]["guard"]
        assert {r["output"]["status"] for r in stopped} == {"skipped"}
        assert close["activity"]["provider"]["func"] == "close_market"
    # The rollbacks ran, and nothing of the run is left in the lab.
    assert [r["status"] for r in chaos["rollbacks"]] == ["succeeded", "succeeded"]
    assert lab.status().nodes and all(n.healthy for n in lab.status().nodes)
    _report_has_both_runs(tmp_path, exp_id, mode, own.path, theirs)


def _report_has_both_runs(folder: Path, exp_id: str, mode: str, own: Path, theirs: dict) -> None:
    """`knight report` of the two journals: a row each, and the chaos run's page and plot."""
    journals = folder / "journals"
    journals.mkdir()
    shutil.copy(folder / f"{exp_id}-{mode}-chaos.json", journals)
    shutil.copy(own, journals)
    result = build_report(journals, folder / "report")
    rows = {r["experiment"]: r for r in result.rows}
    assert rows.keys() >= {exp_id, f"{exp_id} (chaos run)"}, result.rows
    row = rows[f"{exp_id} (chaos run)"]
    assert (row["mode"], row["status"]) == (mode, "deviated" if mode == "unsafe" else "completed")
    assert row["excess shares"] == fmt_int(theirs["excess_shares"])
    assert row["runaway nodes"] == runaway_text(theirs)
    page = folder / "report" / "experiments" / f"{exp_id}-{mode}-chaos.md"
    assert "| run by | chaos run |" in page.read_text()
    assert page.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.skipped == []
