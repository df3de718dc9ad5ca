"""A fault on one lab node, with its undo: the base class every kind in `kinds/` derives from.

A fault is scoped to one container of this lab (its name and the lab's label), so it can never
touch anything else on the Docker engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from toolkit.errors import KnightError
from toolkit.lab.lab import Lab

__all__ = ["Fault", "repair"]


class Fault:
    """One fault on one node; subclasses set NAME and implement inject, undo and halt."""

    NAME: ClassVar[str] = ""
    #: What the fault does, one line (for `knight lab halt-all` and the journal).
    SUMMARY: ClassVar[str] = ""
    #: When `halt_all` undoes this kind: lower first.
    HALT_RANK: ClassVar[int] = 1

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
