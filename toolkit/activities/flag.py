"""flag: turn a feature flag on or off on every node, with the meaning it is declared to have."""

from __future__ import annotations

from .schema import REQUIRED, Arg, Spec, flag_name, switch, text

SPEC = Spec(
    name="flag",
    summary="Set a flag on or off across the fleet.",
    args={
        "name": Arg(flag_name, REQUIRED, "the flag, e.g. flag_7"),
        "value": Arg(switch, REQUIRED, "on or off"),
        "meaning": Arg(
            text, None, "declared meaning (default: what the newest release reading it means)"
        ),
    },
)
