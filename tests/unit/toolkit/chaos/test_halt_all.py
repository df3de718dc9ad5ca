"""`halt_all` undoes every kind of fault even when one fails, and thaws paused containers
before anything else (the other undos exec into the container)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from toolkit.chaos import kinds
from toolkit.chaos.fault import Fault
from toolkit.errors import KnightError

#: A lab reached through Docker (the kinds' halts are fakes here: they never touch it).
A_LAB = SimpleNamespace(through_inventory=False)


def _kind(name: str, calls: list[str], rank: int = 1, fails: bool = False) -> type[Fault]:
    def halt(cls, lab):
        calls.append(name)
        if fails:
            raise RuntimeError(f"{name} broke")
        return [f"smars-{len(calls)}"]

    return type(
        name.title(), (Fault,), {"NAME": name, "HALT_RANK": rank, "halt": classmethod(halt)}
    )


def test_the_shipped_pause_is_undone_before_every_other_kind():
    order = sorted(kinds.FAULTS.values(), key=lambda cls: (cls.HALT_RANK, cls.NAME))
    assert order[0].NAME == "pause"
    assert {cls.NAME for cls in order} == {"corrupt", "delay", "kill", "partition", "pause", "stop"}


def test_every_kind_is_undone_even_when_one_fails_and_the_error_names_it(monkeypatch):
    calls: list[str] = []
    fake = {
        "delay": _kind("delay", calls),
        "kill": _kind("kill", calls, fails=True),
        "pause": _kind("pause", calls, rank=0),
        "stop": _kind("stop", calls),
    }
    monkeypatch.setattr(kinds, "FAULTS", fake)
    with pytest.raises(KnightError, match=r"kill: RuntimeError: kill broke") as info:
        kinds.halt_all(A_LAB)  # type: ignore[arg-type]
    assert calls == ["pause", "delay", "kill", "stop"]
    assert "delay" not in str(info.value) and "stop" not in str(info.value)


def test_halt_all_says_what_each_kind_repaired(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(
        kinds, "FAULTS", {"pause": _kind("pause", calls, 0), "stop": _kind("stop", calls)}
    )
    assert kinds.halt_all(A_LAB) == {"pause": ["smars-1"], "stop": ["smars-2"]}  # type: ignore[arg-type]


def test_through_an_inventory_only_the_kinds_done_over_ssh_are_looked_for(monkeypatch):
    calls: list[str] = []
    over_ssh = _kind("stop", calls)
    over_ssh.OVER_SSH = True
    monkeypatch.setattr(kinds, "FAULTS", {"partition": _kind("partition", calls), "stop": over_ssh})
    fleet = SimpleNamespace(through_inventory=True)
    assert kinds.halt_all(fleet) == {"stop": ["smars-1"]}  # type: ignore[arg-type]
    assert calls == ["stop"]
