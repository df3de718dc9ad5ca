"""wait: let time pass while the run watches (samples, abort conditions)."""

from __future__ import annotations

from .schema import REQUIRED, Arg, Spec, number

SPEC = Spec(
    name="wait",
    summary="Wait, watching.",
    args={"seconds": Arg(number(minimum=0, maximum=3600), REQUIRED, "how long")},
)
