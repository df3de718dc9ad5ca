"""The same experiment under both runners, on the real lab: `knight experiment run` and the real
`chaos run --rollback-strategy always` of its export reach the same verdict. Unsafe, both
deviate, with excess shares and the same runaway node; guarded, neither does. The faulty node
is set through the Chaos Toolkit's own `--var`, as its users would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.chaostoolkit.export import export_experiment
from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import run_experiment
from toolkit.lab.lab import Lab

NODE = "smars-3"
CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent))


def _chaos_run(lab: Lab, tmp_path: Path, mode: str) -> dict:
    path, journal = tmp_path / f"skipped_node-{mode}.json", tmp_path / f"journal-{mode}.json"
    path.write_text(json.dumps(export_experiment(load_experiment("skipped_node"), mode)))
    env = os.environ | {"KNIGHT_LAB": lab.settings.lab}
    proc = subprocess.run(
        [
            CHAOS,
            "--no-log-file",
            "run",
            str(path),
            "--rollback-strategy",
            "always",
            "--journal-path",
            str(journal),
            "--var",
            f"node={NODE}",
            "--var",
            "open_s:int=3",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=env,
    )
    assert journal.exists(), proc.stdout + proc.stderr
    return json.loads(journal.read_text())


def _knight(journal: dict) -> dict:
    (entry,) = [e for e in journal.get("extensions", []) if e.get("name") == "knight"]
    assert entry["errors"] == []
    return entry


@pytest.mark.parametrize("mode", ["unsafe", "guarded"])
def test_chaos_run_of_the_export_reaches_knights_own_verdict(lab: Lab, tmp_path, mode):
    exp = load_experiment("skipped_node", {"node": NODE, "open_s": "3"})
    own = run_experiment(lab, exp, mode).journal
    chaos = _chaos_run(lab, tmp_path, mode)
    theirs = _knight(chaos)["outcome"]
    assert chaos["deviated"] is own["deviated"] is (mode == "unsafe")
    assert theirs["runaway_nodes"] == own["outcome"]["runaway_nodes"]
    assert theirs["fleet_end"] == own["outcome"]["fleet_end"]
    if mode == "unsafe":
        assert own["outcome"]["runaway_nodes"] == [NODE]
        assert theirs["excess_shares"] > 0 and own["outcome"]["excess_shares"] > 0
        after = {
            p["activity"]["name"]: p["tolerance_met"]
            for p in chaos["steady_states"]["after"]["probes"]
        }
        assert False in after.values()  # the hypothesis after the method failed
    else:
        assert theirs["excess_shares"] == own["outcome"]["excess_shares"] == 0
        deploy = chaos["run"][0]["output"]
        assert deploy["status"] == "refused" and deploy["guard"]
        assert {r["output"]["status"] for r in chaos["run"][1:-1]} == {"skipped"}
    # The rollbacks ran, and nothing of the run is left in the lab.
    assert [r["status"] for r in chaos["rollbacks"]] == ["succeeded", "succeeded"]
    assert lab.status().nodes and all(n.healthy for n in lab.status().nodes)
