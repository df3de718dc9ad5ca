"""wait: let time pass while the run watches (samples, abort conditions)."""

from __future__ import annotations

from typing import Any

from toolkit.experiments.state import RunState

from .schema import REQUIRED, Arg, Spec, StepOutcome, number

SPEC = Spec(
    name="wait",
    summary="Wait, watching.",
    args={"seconds": Arg(number(minimum=0, maximum=3600), REQUIRED, "how long")},
)


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    if not run.sleep(args["seconds"]):
        return StepOutcome("done", "cut short by an abort condition")
    return StepOutcome("done")
