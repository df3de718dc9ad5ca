"""open: the market opens. A load phase whose parent orders carry the RLP flag, marked as the open.

The market stays open while the next steps happen, until a `close` step or the end of the
method, however long they take: what an experiment shows does not depend on how fast the
machine is. A `duration_s` closes it after a fixed time instead.
"""

from __future__ import annotations

from typing import Any

from toolkit.experiments.context import context

from .call import activity
from .load import send
from .schema import Arg, Spec, boolean, integer, number

SPEC = Spec(
    name="open",
    summary="Open the market: RLP parent orders start flowing.",
    args={
        "rate": Arg(number(minimum=0), 200.0, "parent orders per second over all nodes"),
        "duration_s": Arg(
            number(minimum=0.1, maximum=3600),
            None,
            "seconds the market is open (default: until a close step or the method's end)",
        ),
        "background": Arg(boolean, True, "with duration_s: keep it open while the next steps run"),
        "rlp_share": Arg(number(0, 1), 0.25, "fraction of parent orders in the RLP"),
        "qty": Arg(integer(1, 1_000_000), 100, "shares per parent order"),
    },
)


@activity(SPEC)
def open_market(
    rate: float = 200.0,
    duration_s: float | None = None,
    background: bool = True,
    rlp_share: float = 0.25,
    qty: int = 100,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """RLP parent orders start flowing, until the market closes (or for `duration_s`)."""
    args = {"rate": rate, "duration_s": duration_s, "background": background}
    args |= {"rlp_share": rlp_share, "qty": qty}
    return send(context(configuration), args, SPEC.name)
