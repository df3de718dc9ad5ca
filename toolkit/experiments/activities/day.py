"""day: a marker on the timeline (a day of the staged 2012 deploy, or a time of day)."""

from __future__ import annotations

from typing import Any

from toolkit.experiments.state import RunState

from .schema import REQUIRED, Arg, Spec, StepOutcome, text

SPEC = Spec(
    name="day",
    summary="Mark a moment of the story on the timeline.",
    args={"label": Arg(text, REQUIRED, "what the marker says, e.g. 2012-07-27 (Fri)")},
)


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    return StepOutcome("done")  # the step's label says it all
