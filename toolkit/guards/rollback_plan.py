"""Rollback safety (guard 6): before a rollback, set each node's target release against the flags
that are on, and refuse a rollback that would run code where an active flag means something
else. A pure planner: fleet state and catalog in, a plan out; nothing is touched.

Semantics. A flag is a *conflict* on a node when it is ON there and the target release's code
reads it (the catalog gives it a meaning in that release) with a meaning other than the one
declared on the node: flag_7 on with meaning rlp, rolled back to 7.1.0 where flag_7 means
power_peg, is the 2012 rollback that woke Power Peg on all eight servers. A flag that is on
without a declared meaning is a conflict too when the target reads it: nobody can say it means
what the target's code will do with it. A flag that is off, or that the target's code does not
read, is inert after the rollback and never a conflict. Nodes already on the target are planned
as well: the skipped server of 2012 ran Power Peg before any rollback.

The safe sequence for an unsafe plan: kill switch, each conflicting flag off, the (guarded)
rollback, verify, resume. For a safe plan it is just the rollback and the verification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import KnightError
from toolkit.releases.catalog import Catalog

__all__ = ["Conflict", "NodeMove", "RollbackPlan", "RollbackRefused", "check", "plan_rollback"]


class RollbackRefused(KnightError):
    """The rollback would run code where a flag that is on means something else."""


@dataclass(frozen=True)
class NodeMove:
    """One node's part of the rollback."""

    node: str
    from_release: str | None
    to: str

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "from": self.from_release, "to": self.to}


@dataclass(frozen=True)
class Conflict:
    """A flag that is on where the target's code would run it as something else."""

    node: str
    flag: str
    declared_meaning: str | None
    target_code_meaning: str

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "flag": self.flag,
            "declared_meaning": self.declared_meaning,
            "target_code_meaning": self.target_code_meaning,
        }


@dataclass(frozen=True)
class RollbackPlan:
    """Where every node goes, what would go wrong, and the sequence that avoids it."""

    target: str
    nodes: list[NodeMove]
    conflicts: list[Conflict] = field(default_factory=list)
    sequence: list[dict[str, str]] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return not self.conflicts

    @property
    def flags_to_turn_off(self) -> list[str]:
        return sorted({c.flag for c in self.conflicts})

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "safe": self.safe,
            "nodes": [n.to_json() for n in self.nodes],
            "conflicts": [c.to_json() for c in self.conflicts],
            "sequence": [dict(s) for s in self.sequence],
        }

    def conflict_lines(self) -> list[str]:
        """One line per conflicting flag and meaning, naming the nodes."""
        grouped: dict[tuple[str, str | None, str], list[str]] = {}
        for c in self.conflicts:
            grouped.setdefault((c.flag, c.declared_meaning, c.target_code_meaning), []).append(
                c.node
            )
        lines = []
        for (flag, declared, code), nodes in grouped.items():
            said = f"means {declared}" if declared else "has no declared meaning"
            lines.append(
                f"{flag} is on and {said}, but {self.target} runs it as {code} "
                f"on {', '.join(nodes)}"
            )
        return lines

    def describe(self) -> str:
        """A few lines for a person: verdict, conflicts, the sequence to run."""
        sources = sorted({n.from_release or "unknown" for n in self.nodes})
        head = f"rollback of {len(self.nodes)} nodes ({', '.join(sources)}) to {self.target}: " + (
            "safe" if self.safe else "UNSAFE"
        )
        lines = [head, *(f"  {line}" for line in self.conflict_lines())]
        lines.append("safe sequence:" if not self.safe else "sequence:")
        lines += [f"  {i}. {s['command']}" for i, s in enumerate(self.sequence, 1)]
        return "\n".join(lines)


def _field(node: Any, name: str) -> Any:
    """Nodes come as `knight lab status --json` dicts or as NodeStatus objects."""
    return node.get(name) if isinstance(node, Mapping) else getattr(node, name, None)


def _sequence(target: str, flags_off: list[str]) -> list[dict[str, str]]:
    steps = []
    if flags_off:
        # Stop trading first: until the flags are off, any order can reach the wrong code.
        steps.append({"step": "kill", "command": "knight kill"})
        steps += [
            {"step": "flag_off", "command": f"knight flags set {flag} off"} for flag in flags_off
        ]
    steps.append({"step": "rollback", "command": f"knight rollback --to {target}"})
    steps.append({"step": "verify", "command": f"knight verify --release {target}"})
    if flags_off:
        steps.append({"step": "resume", "command": "knight resume"})
    return steps


def plan_rollback(
    nodes: Iterable[Any], catalog: Catalog, target: str | None = None
) -> RollbackPlan:
    """Plan a rollback of `nodes` (name, release, flags) to `target` (default: the baseline).

    `flags` maps a flag name to `{"value": bool, "meaning": str, ...}`, as the nodes report
    them. Raises ReleaseError for a target the catalog does not know.
    """
    version = target or catalog.baseline
    code_meanings = catalog.get(version).flags
    moves, conflicts = [], []
    for node in nodes:
        name = str(_field(node, "name"))
        moves.append(NodeMove(name, _field(node, "release"), version))
        for flag, state in sorted((_field(node, "flags") or {}).items()):
            state = state if isinstance(state, Mapping) else {}
            code = code_meanings.get(flag)
            declared = state.get("meaning") or None
            if state.get("value") is True and code is not None and declared != code:
                conflicts.append(Conflict(name, flag, declared, code))
    flags_off = sorted({c.flag for c in conflicts})
    return RollbackPlan(version, moves, conflicts, _sequence(version, flags_off))


def check(plan: RollbackPlan) -> None:
    """Raise RollbackRefused, naming nodes, flags and the safe sequence, when `plan` is unsafe."""
    if plan.safe:
        return
    steps = "; ".join(s["command"] for s in plan.sequence)
    raise RollbackRefused(
        f"rollback to {plan.target} refused: {'; '.join(plan.conflict_lines())}. "
        f"Safe sequence: {steps}"
    )
