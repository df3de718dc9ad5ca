"""knight's activities are plain functions the Chaos Toolkit calls as they are: their signatures
are their SPECs, a wrong argument is one line naming the activity and the argument (and the
rollbacks still run, under the real `chaos run`), and discovery lists every one of them."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import toolkit
from toolkit.chaostoolkit import actions
from toolkit.errors import ConfigError
from toolkit.experiments.activities import ACTIVITIES, ACTIVITY_FUNCTIONS, ActivityError
from toolkit.experiments.activities.schema import REQUIRED
from toolkit.experiments.context import context

ROOT = Path(__file__).resolve().parents[4]

CHAOS = shutil.which("chaos", path=str(Path(sys.executable).parent))
#: A lab name no test brings up: these calls must fail before they reach any lab.
NO_LAB = {"knight_lab": "kctk-unit-no-lab"}


@pytest.mark.parametrize("name", sorted(ACTIVITIES))
def test_an_activity_functions_arguments_are_its_spec(name):
    spec, fn = ACTIVITIES[name], ACTIVITY_FUNCTIONS[name]
    params = inspect.signature(fn).parameters
    assert list(params)[-2:] == ["configuration", "secrets"]
    own = {k: p.default for k, p in params.items() if k not in ("configuration", "secrets")}
    expected = {
        k: (inspect.Parameter.empty if a.default is REQUIRED else a.default)
        for k, a in spec.args.items()
    }
    assert own == expected
    assert getattr(actions, fn.__name__) is fn  # the extension exports the very function


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: actions.deploy("nine", configuration=NO_LAB),
            "deploy: release: 'nine' is not a release",
        ),
        (
            lambda: actions.deploy(configuration=NO_LAB),
            "deploy: missing required argument 'release'",
        ),
        (
            lambda: actions.wait(seconds="6", configuration=NO_LAB),
            "wait: seconds: expected a number",
        ),
        (
            lambda: actions.deploy("8.0.0", skip=["smars-99"], configuration=NO_LAB),
            "deploy: skip: unknown node 'smars-99'",
        ),
        (
            lambda: actions.fault("stop", "smars-1", delay_ms=5, configuration=NO_LAB),
            "fault: delay_ms: only a delay fault has a delay",
        ),
        (
            lambda: actions.kill(node="smars-1", configuration=NO_LAB),
            "kill: got an unexpected keyword argument 'node'",
        ),
    ],
)
def test_a_wrong_argument_is_one_line_naming_the_activity_and_the_argument(call, message):
    with pytest.raises(ActivityError) as info:
        call()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_an_inventory_in_the_configuration_is_the_fleet_acted_on_never_the_lab(tmp_path):
    # The fleet is read from the inventory before anything is done: one that is not there, or
    # that names no market, is one line; never the lab instead.
    with pytest.raises(ConfigError, match=r"staging.yml: inventory not found"):
        actions.deploy("8.0.0", configuration=NO_LAB | {"knight_inventory": "staging.yml"})
    staging = ROOT / "playbooks" / "inventories" / "staging.example"
    ctx = context(NO_LAB | {"knight_inventory": str(staging)})
    assert ctx.lab.through_inventory
    assert ctx.lab.settings.node_names == [f"smars-{i}" for i in range(1, 9)]
    with pytest.raises(ActivityError, match=r"deploy: skip: .*smars-9"):
        actions.deploy(
            "8.0.0", skip=["smars-9"], configuration=NO_LAB | {"knight_inventory": str(staging)}
        )


def test_discovery_lists_every_activity_and_probe_with_its_arguments():
    found = toolkit.discover(discover_system=False)
    assert found["extension"] == {"name": "knight", "version": toolkit.__version__}
    by_name = {(a["type"], a["name"]): a for a in found["activities"]}
    actions_found = sorted(n for t, n in by_name if t == "action")
    assert actions_found == sorted(fn.__name__ for fn in ACTIVITY_FUNCTIONS.values())
    probes = sorted(n for t, n in by_name if t == "probe")
    assert probes == [
        "excess_shares",
        "fleet_releases",
        "fleet_uniform",
        "nodes_healthy",
        "orders_lost",
        "runaway_nodes",
    ]
    deploy_args = [a["name"] for a in by_name[("action", "deploy")]["arguments"]]
    assert deploy_args[:3] == ["release", "skip", "nodes"]


def test_chaos_run_says_which_argument_is_wrong_in_one_line_and_still_rolls_back(tmp_path):
    """The real `chaos run`: a deploy with a release that is no release fails in one line; the
    rollback runs all the same (it touches no lab)."""
    experiment = {
        "title": "a wrong argument",
        "description": "the deploy's release is no release",
        "configuration": NO_LAB,
        "method": [
            {
                "type": "action",
                "name": "bad-deploy",
                "provider": {
                    "type": "python",
                    "module": "toolkit.chaostoolkit.actions",
                    "func": "deploy",
                    "arguments": {"release": "nine", "skip": ["smars-8"]},
                },
            }
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "marker",
                "provider": {
                    "type": "python",
                    "module": "toolkit.chaostoolkit.actions",
                    "func": "day",
                    "arguments": {"label": "rolled back"},
                },
            }
        ],
    }
    path, journal_path = tmp_path / "bad.json", tmp_path / "journal.json"
    path.write_text(json.dumps(experiment))
    proc = subprocess.run(
        [
            CHAOS,
            "--no-log-file",
            "run",
            str(path),
            "--rollback-strategy",
            "always",
            "--journal-path",
            str(journal_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    journal = json.loads(journal_path.read_text())
    (step,) = journal["run"]
    assert step["status"] == "failed"
    assert "deploy: release: 'nine' is not a release" in step["exception"][-1]
    failed = [line for line in (proc.stdout + proc.stderr).splitlines() if "=> failed" in line]
    assert len(failed) == 1 and re.search(r"ActivityError: deploy: release: 'nine'", failed[0])
    assert [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]] == [
        ("marker", "succeeded")
    ]
