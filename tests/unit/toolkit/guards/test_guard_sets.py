"""Guard sets: the names of the contract, `all`/`none`, modes, the routers' own file, and the
default for commands run by hand."""

from __future__ import annotations

import pytest

from toolkit.chaos.kinds import FAULTS
from toolkit.errors import ConfigError
from toolkit.guards.sets import GUARDS, GuardSet, default_guards


def test_the_guard_names_are_the_contracts():
    assert GUARDS == ("atomic", "fencing", "flags", "risk", "monitor", "rollback")


def test_a_list_names_exactly_the_guards_that_are_on():
    guards = GuardSet.parse("flags, risk")
    assert guards.names == ["flags", "risk"]
    assert guards.to_json() == {
        "atomic": False,
        "fencing": False,
        "flags": True,
        "risk": True,
        "monitor": False,
        "rollback": False,
    }
    assert guards.label() == "flags+risk"


@pytest.mark.parametrize(("text", "names"), [("all", list(GUARDS)), ("none", []), ("", [])])
def test_all_and_none(text, names):
    assert GuardSet.parse(text).names == names


def test_modes_mean_none_and_all():
    assert GuardSet.for_mode("unsafe") == GuardSet()
    assert GuardSet.for_mode("guarded") == GuardSet.all()
    with pytest.raises(ConfigError, match="unknown mode 'careful'"):
        GuardSet.for_mode("careful")


def test_an_unknown_guard_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown guard 'armour'") as info:
        GuardSet.parse("atomic,armour")
    assert info.value.exit_code == 2


def test_the_routers_file_holds_only_the_guards_they_enforce():
    assert GuardSet.all().router_file() == {"fencing": True, "flags": True, "risk": True}
    assert GuardSet.of(["atomic", "monitor"]).router_file() == {
        "fencing": False,
        "flags": False,
        "risk": False,
    }


def test_the_default_leaves_out_the_registry_and_follows_knight_guards(monkeypatch):
    monkeypatch.delenv("KNIGHT_GUARDS", raising=False)
    assert default_guards().names == ["atomic", "fencing", "risk", "rollback"]
    monkeypatch.setenv("KNIGHT_GUARDS", "none")
    assert default_guards() == GuardSet()
    monkeypatch.setenv("KNIGHT_GUARDS", "atomic,bogus")
    with pytest.raises(ConfigError, match="KNIGHT_GUARDS"):
        default_guards()


def test_every_chaos_fault_is_one_module_found_by_name():
    assert sorted(FAULTS) == ["corrupt", "delay", "kill", "partition", "pause", "stop"]
    assert all(cls.SUMMARY for cls in FAULTS.values())
