"""Rollback safety: the 2012 rollback is refused with the conflict and the safe sequence; a
rollback where no flag that is on changes meaning is planned as safe."""

from __future__ import annotations

import json

import pytest

from toolkit.errors import KnightError, ReleaseError
from toolkit.guards.rollback_plan import RollbackRefused, check, plan_rollback
from toolkit.lab.status import NodeStatus
from toolkit.releases.catalog import load_catalog
from toolkit.settings import Settings

S = Settings()
NODES = [f"smars-{i}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(S.catalog_path, S.router_source)


def node(name: str, release: str, **flags: tuple[bool, str | None]) -> dict:
    """A node as `knight lab status --json` reports it."""
    return {
        "name": name,
        "release": release,
        "flags": {f: {"value": v, "meaning": m} for f, (v, m) in flags.items()},
        "healthy": True,
        "trading": "trading",
    }


def fleet_2012(flag_7_on: bool = True) -> list[dict]:
    """Seven nodes on 8.0.0, smars-8 skipped on 7.1.0, flag_7 declared as rlp everywhere."""
    return [
        node(n, "7.1.0" if n == "smars-8" else "8.0.0", flag_7=(flag_7_on, "rlp")) for n in NODES
    ]


def test_the_2012_rollback_is_unsafe_on_all_eight_nodes(catalog):
    plan = plan_rollback(fleet_2012(), catalog)
    assert plan.target == "7.1.0"  # the baseline by default
    assert plan.safe is False
    assert [
        (c.node, c.flag, c.declared_meaning, c.target_code_meaning) for c in plan.conflicts
    ] == [(n, "flag_7", "rlp", "power_peg") for n in NODES]
    assert [(m.node, m.from_release, m.to) for m in plan.nodes] == [
        (n, "7.1.0" if n == "smars-8" else "8.0.0", "7.1.0") for n in NODES
    ]


def test_the_2012_rollback_gets_the_safe_sequence(catalog):
    plan = plan_rollback(fleet_2012(), catalog, "7.1.0")
    assert plan.sequence == [
        {"step": "kill", "command": "knight kill"},
        {"step": "flag_off", "command": "knight flags set flag_7 off"},
        {"step": "rollback", "command": "knight rollback --to 7.1.0"},
        {"step": "verify", "command": "knight verify --release 7.1.0"},
        {"step": "resume", "command": "knight resume"},
    ]


def test_check_refuses_it_naming_nodes_flag_and_sequence(catalog):
    with pytest.raises(RollbackRefused) as info:
        check(plan_rollback(fleet_2012(), catalog))
    message = str(info.value)
    assert isinstance(info.value, KnightError)
    assert "\n" not in message
    assert message.startswith(
        "rollback to 7.1.0 refused: flag_7 is on and means rlp, but 7.1.0 runs it as power_peg "
        "on smars-1, smars-2, smars-3, smars-4, smars-5, smars-6, smars-7, smars-8."
    )
    assert message.endswith(
        "Safe sequence: knight kill; knight flags set flag_7 off; knight rollback --to 7.1.0; "
        "knight verify --release 7.1.0; knight resume"
    )


def test_the_plan_serialises_to_json(catalog):
    doc = json.loads(json.dumps(plan_rollback(fleet_2012(), catalog).to_json()))
    assert doc["safe"] is False
    assert doc["target"] == "7.1.0"
    assert doc["nodes"][0] == {"node": "smars-1", "from": "8.0.0", "to": "7.1.0"}
    assert doc["conflicts"][7] == {
        "node": "smars-8",
        "flag": "flag_7",
        "declared_meaning": "rlp",
        "target_code_meaning": "power_peg",
    }
    assert [s["step"] for s in doc["sequence"]] == [
        "kill",
        "flag_off",
        "rollback",
        "verify",
        "resume",
    ]


def test_describe_gives_the_verdict_and_numbered_steps(catalog):
    lines = plan_rollback(fleet_2012(), catalog).describe().splitlines()
    assert lines[0] == "rollback of 8 nodes (7.1.0, 8.0.0) to 7.1.0: UNSAFE"
    assert lines[1].startswith("  flag_7 is on and means rlp, but 7.1.0 runs it as power_peg")
    assert lines[2:] == [
        "safe sequence:",
        "  1. knight kill",
        "  2. knight flags set flag_7 off",
        "  3. knight rollback --to 7.1.0",
        "  4. knight verify --release 7.1.0",
        "  5. knight resume",
    ]


def test_with_flag_7_off_the_rollback_is_safe(catalog):
    plan = plan_rollback(fleet_2012(flag_7_on=False), catalog)
    assert plan.safe is True
    assert plan.conflicts == []
    assert [s["command"] for s in plan.sequence] == [
        "knight rollback --to 7.1.0",
        "knight verify --release 7.1.0",
    ]
    assert check(plan) is None
    assert plan.describe().splitlines()[0] == "rollback of 8 nodes (7.1.0, 8.0.0) to 7.1.0: safe"


def test_rlp_enable_on_is_inert_under_7_1_0_which_does_not_read_it(catalog):
    fleet = [node(n, "8.0.1", rlp_enable=(True, "rlp")) for n in NODES]
    plan = plan_rollback(fleet, catalog, "7.1.0")
    assert plan.safe is True
    assert {m.from_release for m in plan.nodes} == {"8.0.1"}


def test_a_flag_on_whose_meaning_matches_the_target_code_is_not_a_conflict(catalog):
    fleet = [node(n, "8.0.0", flag_7=(True, "power_peg")) for n in NODES]
    assert plan_rollback(fleet, catalog, "7.1.0").safe is True


def test_a_flag_on_without_a_declared_meaning_that_the_target_reads_is_a_conflict(catalog):
    fleet = [node("smars-1", "8.0.1", flag_7=(True, None), rlp_enable=(True, "rlp"))]
    plan = plan_rollback(fleet, catalog, "7.1.0")
    assert [(c.flag, c.declared_meaning, c.target_code_meaning) for c in plan.conflicts] == [
        ("flag_7", None, "power_peg")
    ]
    assert "flag_7 is on and has no declared meaning" in plan.describe()


def test_rolling_forward_to_8_0_0_conflicts_with_a_power_peg_flag(catalog):
    fleet = [node("smars-1", "7.1.0", flag_7=(True, "power_peg"))]
    plan = plan_rollback(fleet, catalog, "8.0.0")
    assert [(c.declared_meaning, c.target_code_meaning) for c in plan.conflicts] == [
        ("power_peg", "rlp")
    ]


def test_node_status_objects_are_accepted_like_status_json(catalog):
    status = NodeStatus(
        name="smars-3",
        container="knight-smars-3",
        state="running",
        release="8.0.0",
        flags={"flag_7": {"value": True, "meaning": "rlp", "code_meaning": "rlp"}},
    )
    plan = plan_rollback([status], catalog)
    assert [(c.node, c.flag) for c in plan.conflicts] == [("smars-3", "flag_7")]


def test_an_unknown_target_is_a_release_error(catalog):
    with pytest.raises(ReleaseError, match=r"unknown release '6\.0\.0'"):
        plan_rollback(fleet_2012(), catalog, "6.0.0")
