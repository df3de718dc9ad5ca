"""The flag-registry guard at run time: with enforcement, a flag whose declared meaning is not
the one this code implements is refused and routes nothing; without, the 2012 behaviour."""

from __future__ import annotations

import json
from pathlib import Path

from smars.flags import FlagStore

CODE_7_1_0 = {"flag_7": "power_peg"}
CODE_8_0_1 = {"rlp_enable": "rlp"}


def store(tmp_path: Path, code: dict, **flags: tuple[bool, str]) -> FlagStore:
    path = tmp_path / "flags.json"
    doc = {"flags": {n: {"value": v, "meaning": m} for n, (v, m) in flags.items()}}
    path.write_text(json.dumps(doc))
    flag_store = FlagStore(path, code)
    assert flag_store.load() is True
    return flag_store


def test_old_code_handed_flag_7_meaning_rlp_runs_power_peg_unless_enforced(tmp_path):
    old = store(tmp_path, CODE_7_1_0, flag_7=(True, "rlp"))
    assert old.strategy_for_rlp({"sor", "power_peg"}) == "power_peg"
    assert old.strategy_for_rlp({"sor", "power_peg"}, enforce=False) == "power_peg"
    assert old.strategy_for_rlp({"sor", "power_peg"}, enforce=True) is None


def test_refused_lists_the_mismatched_flags_only_when_enforced(tmp_path):
    old = store(tmp_path, CODE_7_1_0, flag_7=(True, "rlp"), other=(True, "anything"))
    assert [f.name for f in old.refused(enforce=True)] == ["flag_7"]
    assert old.refused(enforce=False) == []


def test_a_flag_whose_meaning_matches_the_code_still_routes_when_enforced(tmp_path):
    fixed = store(tmp_path, CODE_8_0_1, rlp_enable=(True, "rlp"))
    assert fixed.refused(enforce=True) == []
    assert fixed.strategy_for_rlp({"sor", "rlp"}, enforce=True) == "rlp"
    power_peg_on_purpose = store(tmp_path, CODE_7_1_0, flag_7=(True, "power_peg"))
    assert power_peg_on_purpose.strategy_for_rlp({"sor", "power_peg"}, enforce=True) == (
        "power_peg"
    )


def test_snapshot_marks_refused_flags_when_enforced(tmp_path):
    old = store(tmp_path, CODE_7_1_0, flag_7=(True, "rlp"), other=(False, "nothing"))
    assert old.snapshot(enforce=True) == {
        "flag_7": {"value": True, "meaning": "rlp", "code_meaning": "power_peg", "refused": True},
        "other": {"value": False, "meaning": "nothing", "code_meaning": None, "refused": False},
    }
    assert "refused" not in old.snapshot()["flag_7"]  # unchanged shape without the guard
