"""smarsctl, the node side of every playbook: its command line, and what its steps import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SMARSCTL = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"


def smarsctl(*args: str) -> tuple[int, dict]:
    run = subprocess.run(
        [sys.executable, "-", *args],
        input=SMARSCTL.read_text(),  # as the playbooks send it
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run.returncode, json.loads(run.stdout)


def test_an_unknown_command_gives_the_usage():
    code, out = smarsctl("launch")
    assert code == 2
    assert out["error"].startswith("usage: smarsctl {status,preflight,stage,")


def test_a_wrong_number_of_arguments_is_refused_before_anything_runs():
    assert smarsctl("flip") == (2, {"error": "flip: bad arguments (takes 2 to 5, 0 given)"})
    assert smarsctl("status", "x") == (2, {"error": "status: bad arguments (takes 0, 1 given)"})
    assert smarsctl("stage", "1", "2", "3", "4", "5") == (
        2,
        {"error": "stage: bad arguments (takes 4, 5 given)"},
    )


def test_only_the_stage_step_pays_for_unpacking_and_none_compiles():
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('smarsctl', {str(SMARSCTL)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(n for n in ('compileall', 'tarfile', 'inspect') if n in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=30
    )
    assert run.stdout.strip() == "[]", run.stderr
