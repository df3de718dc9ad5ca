"""flag: turn a feature flag on or off on every node, with the meaning it is declared to have."""

from __future__ import annotations

from typing import Any

from toolkit.deploy.operations import flag
from toolkit.experiments.state import RunState

from .schema import REQUIRED, Arg, Spec, StepOutcome, flag_name, meaning, switch

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


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    """Set the flag across the fleet. Turning a flag on is where the damage of a mixed fleet
    starts, so the run marks it as the fault (times to detect and kill count from it)."""
    on = bool(args["value"])  # the schema's switch: True for on
    result = flag(run.lab, args["name"], on, args["meaning"], guards=run.guards)
    if result.status == "refused":
        return StepOutcome("refused", result.error or "", result.refused_by)
    if result.status != "done":
        return StepOutcome("failed", result.error or result.status)
    if on and run.journal.fault_t is None:
        run.journal.mark_fault()
    meaning = next((n.get("meaning") for n in result.nodes.values() if n.get("meaning")), "")
    return StepOutcome(
        "done", f"{args['name']} {'on' if on else 'off'} ({meaning or 'as declared'})"
    )
