"""flag: turn a feature flag on or off on every node, with the meaning it is declared to have."""

from __future__ import annotations

from typing import Any

from toolkit.deploy import operations
from toolkit.errors import KnightError
from toolkit.experiments.context import context

from .call import activity, done, refused
from .schema import REQUIRED, Arg, Spec, flag_name, meaning, switch

SPEC = Spec(
    name="flag",
    summary="Set a flag on or off across the fleet.",
    args={
        "name": Arg(flag_name, REQUIRED, "the flag, e.g. flag_7"),
        "value": Arg(switch, REQUIRED, "on or off"),
        "meaning": Arg(
            meaning, None, "declared meaning (default: what the newest release reading it means)"
        ),
    },
)


@activity(SPEC)
def flag(
    name: str,
    value: bool | str,
    meaning: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Set the flag across the fleet. Turning a flag on is where the damage of a mixed fleet
    starts, so the run marks it as the fault (times to detect and kill count from it)."""
    ctx = context(configuration)
    on = bool(value)  # the schema's switch: True for on
    result = operations.flag(ctx.lab, name, on, meaning, guards=ctx.guards)
    if result.status == "refused":
        return refused(SPEC.name, result.error or "", result.refused_by)
    if result.status != "done":
        raise KnightError(result.error or result.status)
    if on:
        ctx.recorder.mark_fault()
    declared = next((n.get("meaning") for n in result.nodes.values() if n.get("meaning")), "")
    return done(SPEC.name, f"{name} {'on' if on else 'off'} ({declared or 'as declared'})")
