"""wait: let time pass while the run watches (samples, abort conditions)."""

from __future__ import annotations

from typing import Any

from toolkit.experiments.context import context

from .call import activity, done
from .schema import REQUIRED, Arg, Spec, number

SPEC = Spec(
    name="wait",
    summary="Wait, watching.",
    args={"seconds": Arg(number(minimum=0, maximum=3600), REQUIRED, "how long")},
)


@activity(SPEC)
def wait(
    seconds: float,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait `seconds`, or less when the run is stopped meanwhile (an abort condition)."""
    if context(configuration).stop.wait(seconds):
        return done(SPEC.name, "cut short by an abort condition")
    return done(SPEC.name)
