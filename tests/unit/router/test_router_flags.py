"""The flags file: good files take effect, bad ones never do, meanings are compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smars.flags import Flag, FlagError, FlagStore, parse_flags

CODE_7_1_0 = {"flag_7": "power_peg"}
CODE_8_0_0 = {"flag_7": "rlp"}


def write(path: Path, doc: object) -> None:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))


def flags_doc(**flags: tuple[bool, str]) -> dict:
    return {"flags": {n: {"value": v, "meaning": m} for n, (v, m) in flags.items()}}


def test_a_good_file_is_parsed():
    data = json.dumps(flags_doc(flag_7=(True, "rlp"), rlp_enable=(False, "rlp"))).encode()
    assert parse_flags(data) == {
        "flag_7": Flag("flag_7", True, "rlp"),
        "rlp_enable": Flag("rlp_enable", False, "rlp"),
    }


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        "{}",
        {"flags": []},
        {"flags": {}, "extra": 1},
        flags_doc(Flag_7=(True, "rlp")),
        flags_doc(**{"7flag": (True, "rlp")}),
        flags_doc(**{"x" * 65: (True, "rlp")}),
        {"flags": {"flag_7": {"value": True}}},
        {"flags": {"flag_7": {"value": True, "meaning": "rlp", "owner": "me"}}},
        {"flags": {"flag_7": {"value": 1, "meaning": "rlp"}}},
        {"flags": {"flag_7": {"value": "true", "meaning": "rlp"}}},
        {"flags": {"flag_7": {"value": True, "meaning": ""}}},
        {"flags": {"flag_7": {"value": True, "meaning": "m" * 65}}},
        {"flags": {"flag_7": {"value": True, "meaning": None}}},
        {"flags": {"flag_7": True}},
    ],
)
def test_every_kind_of_bad_file_is_an_error(doc):
    with pytest.raises(FlagError):
        parse_flags((doc if isinstance(doc, str) else json.dumps(doc)).encode())


def test_invalid_utf8_is_an_error():
    with pytest.raises(FlagError, match="UTF-8"):
        parse_flags(b'{"flags": {"\xff": 1}}')


def test_a_bad_file_keeps_the_last_good_flags_and_reports_the_error(tmp_path):
    path = tmp_path / "flags.json"
    store = FlagStore(path, CODE_8_0_0)
    write(path, flags_doc(flag_7=(True, "rlp")))
    assert store.load() is True
    assert store.error is None
    write(path, {"flags": {"flag_7": {"value": "off", "meaning": "rlp"}}})
    assert store.load() is False
    assert "flag_7.value" in store.error
    assert store.flags == {"flag_7": Flag("flag_7", True, "rlp")}
    write(path, flags_doc(flag_7=(False, "rlp")))
    assert store.load() is True
    assert store.error is None
    assert store.flags["flag_7"].value is False


def test_a_missing_file_at_first_load_means_no_flags_and_an_error(tmp_path):
    store = FlagStore(tmp_path / "absent.json", CODE_7_1_0)
    assert store.load() is False
    assert store.flags == {}
    assert store.error.endswith("not found")
    assert store.strategy_for_rlp({"sor", "power_peg"}) is None


def test_each_flag_shows_its_declared_and_its_code_meaning(tmp_path):
    path = tmp_path / "flags.json"
    write(path, flags_doc(flag_7=(True, "rlp"), other=(False, "nothing")))
    store = FlagStore(path, CODE_7_1_0)
    store.load()
    assert store.snapshot() == {
        "flag_7": {"value": True, "meaning": "rlp", "code_meaning": "power_peg"},
        "other": {"value": False, "meaning": "nothing", "code_meaning": None},
    }


def test_a_flag_whose_declared_meaning_differs_from_the_code_is_a_mismatch(tmp_path):
    path = tmp_path / "flags.json"
    write(path, flags_doc(flag_7=(True, "rlp"), unread=(True, "anything")))
    store = FlagStore(path, CODE_7_1_0)
    store.load()
    assert [f.name for f in store.mismatches()] == ["flag_7"]  # flags the code ignores are not


def test_rlp_goes_where_the_code_says_the_enabled_flag_points(tmp_path):
    """The 2012 mechanism: the declared meaning says rlp, the old code runs Power Peg."""
    path = tmp_path / "flags.json"
    write(path, flags_doc(flag_7=(True, "rlp")))
    old, new, fixed = (
        FlagStore(path, CODE_7_1_0),
        FlagStore(path, CODE_8_0_0),
        FlagStore(path, {"rlp_enable": "rlp"}),
    )
    for store in (old, new, fixed):
        store.load()
    assert old.strategy_for_rlp({"sor", "power_peg"}) == "power_peg"
    assert new.strategy_for_rlp({"sor", "rlp"}) == "rlp"
    assert fixed.strategy_for_rlp({"sor", "rlp"}) is None  # flag_7 retired: rlp orders -> sor


def test_a_flag_that_is_off_routes_nothing(tmp_path):
    path = tmp_path / "flags.json"
    write(path, flags_doc(flag_7=(False, "power_peg")))
    store = FlagStore(path, CODE_7_1_0)
    store.load()
    assert store.strategy_for_rlp({"sor", "power_peg"}) is None
