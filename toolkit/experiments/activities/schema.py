"""The rules an activity's arguments are checked with (value kinds, `Arg` and `Spec`), and what
a step reports back when it has acted (`StepOutcome`).

A kind is a function `(value, context) -> normalised value` that raises `ArgError` with a short
reason; the experiment loader adds the file and line. Nothing here touches the lab.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolkit.releases.catalog import FLAG_NAME, VERSION

__all__ = [
    "REQUIRED",
    "Arg",
    "ArgError",
    "Context",
    "Kind",
    "Spec",
    "StepOutcome",
    "boolean",
    "choice",
    "flag_name",
    "integer",
    "meaning",
    "node",
    "nodes",
    "number",
    "release",
    "switch",
    "text",
]


class ArgError(ValueError):
    """An argument value is wrong; the message says why, the loader says where."""


@dataclass(frozen=True)
class Context:
    """What values are checked against: the nodes of the fleet and the releases of the catalog."""

    fleet: tuple[str, ...]
    releases: tuple[str, ...] = ()


Kind = Callable[[Any, Context], Any]

#: Marks an argument without a default.
REQUIRED: Any = object()


@dataclass(frozen=True)
class Arg:
    """One argument: its kind, its default (or REQUIRED) and one line of documentation."""

    kind: Kind
    default: Any = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Spec:
    """An activity: its name, what it does, its arguments, and an optional cross-argument check
    `check(args, context)`. The check raises ArgError starting with the name of the argument at
    fault ("end_at: ..."), and may fill a default that depends on another argument."""

    name: str
    summary: str
    args: dict[str, Arg] = field(default_factory=dict)
    check: Callable[[dict[str, Any], Context], None] | None = None


@dataclass
class StepOutcome:
    """What one step did: `done`, `refused` (a guard said no; `guard` names it) or `failed`."""

    status: str
    detail: str = ""
    guard: str | None = None


def text(value: Any, ctx: Context) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ArgError("expected text")
    return value.strip()


def boolean(value: Any, ctx: Context) -> bool:
    if not isinstance(value, bool):
        raise ArgError("expected true or false")
    return value


def switch(value: Any, ctx: Context) -> bool:
    """on/off. YAML 1.1 reads a bare `on` as true, so both spellings arrive here."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "off"):
        return value.lower() == "on"
    raise ArgError("expected on or off")


def integer(minimum: int | None = None, maximum: int | None = None) -> Kind:
    def kind(value: Any, ctx: Context) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgError("expected a whole number")
        _bounds(value, minimum, maximum)
        return value

    return kind


def number(minimum: float | None = None, maximum: float | None = None) -> Kind:
    def kind(value: Any, ctx: Context) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgError("expected a number")
        if not math.isfinite(value):  # NaN passes every bound; inf is no duration or rate
            raise ArgError(f"{value} is not a finite number")
        _bounds(value, minimum, maximum)
        return float(value)

    return kind


def _bounds(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ArgError(f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ArgError(f"{value} is above the maximum {maximum}")


def choice(*options: str) -> Kind:
    def kind(value: Any, ctx: Context) -> str:
        if value not in options:
            raise ArgError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return kind


def node(value: Any, ctx: Context) -> str:
    if not isinstance(value, str):
        raise ArgError("expected a node name")
    if value not in ctx.fleet:
        raise ArgError(f"unknown node {value!r} (fleet: {_fleet_text(ctx.fleet)})")
    return value


def nodes(value: Any, ctx: Context) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ArgError("expected a list of node names")
    names = tuple(node(v, ctx) for v in value)
    if len(set(names)) != len(names):
        raise ArgError("a node appears twice")
    return names


def release(value: Any, ctx: Context) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ArgError(f"release {value!r} reads as a number: quote it")
    if not isinstance(value, str) or not VERSION.fullmatch(value):
        raise ArgError(f"{value!r} is not a release (MAJOR.MINOR.PATCH)")
    if ctx.releases and value not in ctx.releases:
        raise ArgError(f"unknown release {value!r} (known: {', '.join(ctx.releases)})")
    return value


def flag_name(value: Any, ctx: Context) -> str:
    if not isinstance(value, str) or not FLAG_NAME.fullmatch(value):
        raise ArgError(f"{value!r} is not a flag name (a-z, 0-9, _)")
    return value


def meaning(value: Any, ctx: Context) -> str:
    """A flag's declared meaning: the name of the strategy it turns on (a flag name's shape).
    It reaches every node through a playbook, so nothing else is let through."""
    if not isinstance(value, str) or not FLAG_NAME.fullmatch(value):
        raise ArgError(f"{value!r} is not a meaning (a strategy name: a-z, 0-9, _)")
    return value


def check_skip_apart_from_nodes(args: dict[str, Any], ctx: Context) -> None:
    """A node may be chosen (`nodes`) or left out (`skip`), not both."""
    both = set(args["skip"]) & set(args["nodes"] or ())
    if both:
        raise ArgError(f"skip: {sorted(both)[0]} is both in nodes and skipped")


def _fleet_text(fleet: Sequence[str]) -> str:
    if len(fleet) > 3:
        return f"{fleet[0]}..{fleet[-1]}"
    return ", ".join(fleet) or "empty"
