"""`knight experiment export --to chaostoolkit`: the real `chaos validate` accepts every shipped
experiment in both modes, and says itself what is wrong with a file broken by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.chaostoolkit.export import export_experiment
from toolkit.experiments.loader import load_experiment

CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent))
SHIPPED = ("skipped_node", "reused_flag", "rollback", "knightmare")


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    assert CHAOS, "the chaostoolkit extra is part of dev: pip install -e '.[dev]'"
    return subprocess.run(
        [CHAOS, "--no-log-file", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=path.parent,
    )


def _export(tmp_path: Path, exp_id: str, mode: str, **sets: str) -> tuple[dict, Path]:
    doc = export_experiment(load_experiment(exp_id, sets), mode)
    path = tmp_path / f"{exp_id}-{mode}.json"
    path.write_text(json.dumps(doc))
    return doc, path


@pytest.mark.parametrize("mode", ["unsafe", "guarded"])
@pytest.mark.parametrize("exp_id", SHIPPED)
def test_chaos_validate_accepts_every_shipped_experiment(tmp_path, exp_id, mode):
    _, path = _export(tmp_path, exp_id, mode)
    proc = _validate(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "experiment syntax and semantic look valid" in proc.stdout + proc.stderr


def test_the_parameters_are_the_configuration_and_the_steps_keep_them(tmp_path):
    doc, _ = _export(tmp_path, "skipped_node", "guarded", node="smars-3")
    config = doc["configuration"]
    assert (config["node"], config["rate"], config["open_s"]) == ("smars-3", 200, 6)
    assert (config["knight_guards"], config["knight_mode"]) == (
        "atomic,fencing,flags,risk,monitor,rollback",
        "guarded",
    )
    assert config["knight_lab"] == {"type": "env", "key": "KNIGHT_LAB", "default": "knight"}
    deploy, flag, open_, wait, close = doc["method"]
    assert deploy["provider"]["func"] == "deploy"
    assert deploy["provider"]["arguments"] == {
        "release": "8.0.0",
        "mode": "manual",
        "skip": ["${node}"],
    }
    assert flag["provider"]["arguments"] == {"name": "flag_7", "value": True, "meaning": "rlp"}
    assert open_["provider"]["func"] == "open_market"
    assert open_["provider"]["arguments"] == {"rate": "${rate}", "rlp_share": 0.25}
    assert wait["provider"]["arguments"] == {"seconds": "${open_s}"}
    assert close["provider"]["func"] == "close_market"
    assert [r["provider"]["func"] for r in doc["rollbacks"]] == ["kill", "flag"]


def test_the_hypothesis_has_knights_probes_and_tolerances_the_damage_first(tmp_path):
    """The Chaos Toolkit stops at the first probe out of tolerance: the damage is checked first,
    so a run that did damage says so in its journal whatever else broke."""
    doc, _ = _export(tmp_path, "skipped_node", "unsafe")
    probes = {p["name"]: p for p in doc["steady-state-hypothesis"]["probes"]}
    assert list(probes) == ["excess_shares", "orders_lost", "fleet_uniform", "nodes_healthy"]
    assert probes["excess_shares"]["tolerance"] == {"type": "range", "range": [0, 0]}
    uniform = probes["fleet_uniform"]["tolerance"]["provider"]
    assert (uniform["func"], uniform["arguments"]) == (
        "holds",
        {"probe": "fleet_uniform", "tolerance": "any"},
    )


def test_a_step_that_may_be_refused_and_go_on_is_named_to_the_refusal_control(tmp_path):
    doc, _ = _export(tmp_path, "rollback", "guarded")
    refusal = next(c for c in doc["controls"] if c["name"] == "knight-refusal")
    assert refusal["provider"]["arguments"] == {"continue_after": ["method-5-rollback"]}
    assert doc["method"][4]["provider"]["func"] == "rollback"


@pytest.mark.parametrize(
    ("breakage", "says"),
    [
        (
            lambda d: d["method"][0]["provider"].update(func="deplyo"),
            "does not expose a function called 'deplyo'",
        ),
        (
            lambda d: d["method"][0]["provider"]["arguments"].update(relase="8.0.0"),
            "argument 'relase' is not part of the function signature in activity 'deploy'",
        ),
        (lambda d: d.pop("method"), "an experiment requires a method"),
    ],
)
def test_a_file_broken_by_hand_gets_chaos_validates_own_error(tmp_path, breakage, says):
    doc, path = _export(tmp_path, "skipped_node", "unsafe")
    breakage(doc)
    path.write_text(json.dumps(doc))
    proc = _validate(path)
    assert proc.returncode != 0
    assert says in proc.stdout + proc.stderr
