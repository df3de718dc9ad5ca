"""day: a marker on the timeline (a day of the staged 2012 deploy, or a time of day)."""

from __future__ import annotations

from typing import Any

from .call import activity, done
from .schema import REQUIRED, Arg, Spec, text

SPEC = Spec(
    name="day",
    summary="Mark a moment of the story on the timeline.",
    args={"label": Arg(text, REQUIRED, "what the marker says, e.g. 2012-07-27 (Fri)")},
)


@activity(SPEC)
def day(
    label: str,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A marker: it does nothing but say where the story is."""
    return done(SPEC.name)  # the step's label says it all
