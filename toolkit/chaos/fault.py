"""A fault on one lab node, with its undo: the base class every kind in `kinds/` derives from.

A fault is scoped to one container of this lab (its name and the lab's label), so it can never
touch anything else on the Docker engine. On a fleet reached through an inventory, a kind that
can (`OVER_SSH`) is done to the node's router by routerd, asked over ssh on its control pipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from toolkit.errors import KnightError
from toolkit.lab.lab import Lab

__all__ = ["Fault", "repair", "repair_over_ssh"]


class Fault:
    """One fault on one node; subclasses set NAME and implement inject, undo and halt."""

    NAME: ClassVar[str] = ""
    #: What the fault does, one line (for `knight lab halt-all` and the journal).
    SUMMARY: ClassVar[str] = ""
    #: When `halt_all` undoes this kind: lower first.
    HALT_RANK: ClassVar[int] = 1
    #: Whether it can be done on a fleet reached through an inventory (ssh to the node, as
    #: the deploy user); a kind that needs the Docker engine cannot.
    OVER_SSH: ClassVar[bool] = False

    def __init__(self, lab: Lab, node: str, **options: Any) -> None:
        lab.check_node(node)
        self.lab = lab
        self.node = node
        self.options = options
        if lab.through_inventory:  # a host of a fleet, reached over ssh: no container
            self.container = None
            return
        self.container = lab.engine.get(lab.settings.container(node))
        if self.container is None:
            raise KnightError(f"{node}: no container in lab {lab.settings.lab!r}")

    @property
    def over_ssh(self) -> bool:
        """Whether this fault is done over ssh (a fleet reached through an inventory)."""
        return self.lab.through_inventory

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


def repair_over_ssh(lab: Lab, word: str) -> list[str]:
    """On a fleet reached through an inventory: say `word` to routerd (its control pipe) on
    every node whose router does not answer; the nodes told."""
    silent = [n.name for n in lab.status().nodes if n.state != "reachable"]
    for node in silent:
        lab.node_control(node, word)
    return silent
