"""Chaos faults on lab nodes: one module per kind of fault, each with an undo, found by name.

Every fault is scoped to one container of this lab (its name and the lab's label), so it can
never touch anything else on the Docker engine. Each kind also knows how to find and undo all
of its own traces across the lab from Docker's state alone, so `halt_all` works even after the
process that injected the faults died.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, ClassVar

from ..errors import ConfigError, KnightError
from ..lab import Lab

__all__ = ["FAULTS", "Fault", "halt_all", "make", "repair"]


class Fault:
    """One fault on one node; subclasses set NAME and implement inject, undo and halt."""

    NAME: ClassVar[str] = ""
    #: What the fault does, one line (for `knight lab halt-all` and the journal).
    SUMMARY: ClassVar[str] = ""

    def __init__(self, lab: Lab, node: str, **options: Any) -> None:
        lab.check_node(node)
        self.lab = lab
        self.node = node
        self.options = options
        self.container = lab.engine.get(lab.settings.container(node))
        if self.container is None:
            raise KnightError(f"{node}: no container in lab {lab.settings.lab!r}")

    def inject(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    @classmethod
    def halt(cls, lab: Lab) -> list[str]:
        """Undo every fault of this kind anywhere in the lab; the nodes it repaired."""
        raise NotImplementedError


def repair(
    lab: Lab,
    fix: Callable[[Any], bool],
    states: tuple[str, ...] = ("running",),
    role: str | None = "router",
) -> list[str]:
    """Apply `fix` to every lab container of `role` (any role: None) in one of `states`;
    the nodes (or containers) it repaired, where `fix` said it found something to undo."""
    found = lab.engine.containers(role=role) if role else lab.engine.containers()
    return [c.labels.get("knight.node", c.name) for c in found if c.status in states and fix(c)]


def _discover() -> dict[str, type[Fault]]:
    found: dict[str, type[Fault]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Fault) and obj.NAME:
                found[obj.NAME] = obj
    return found


FAULTS: dict[str, type[Fault]] = _discover()


def make(kind: str, lab: Lab, node: str, **options: Any) -> Fault:
    """The fault `kind` on `node` (not injected yet)."""
    try:
        cls = FAULTS[kind]
    except KeyError:
        raise ConfigError(f"unknown fault {kind!r} (faults: {', '.join(sorted(FAULTS))})") from None
    return cls(lab, node, **options)


def halt_all(lab: Lab) -> dict[str, list[str]]:
    """Undo every fault of every kind in the lab: kind -> nodes repaired."""
    return {kind: cls.halt(lab) for kind, cls in sorted(FAULTS.items())}
