"""load: parent orders from the load generator, at a rate, for a while; every one accounted for."""

from __future__ import annotations

from .schema import Arg, Spec, boolean, integer, nodes, number

SPEC = Spec(
    name="load",
    summary="Send parent orders to the routers.",
    args={
        "rate": Arg(number(minimum=0), 200.0, "parent orders per second over all nodes"),
        "duration_s": Arg(number(minimum=0.1, maximum=3600), 5.0, "seconds of sending"),
        "background": Arg(boolean, False, "run alongside the next steps instead of waiting"),
        "rlp_share": Arg(number(0, 1), 0.0, "fraction of parent orders in the RLP"),
        "qty": Arg(integer(1, 1_000_000), 100, "shares per parent order"),
        "nodes": Arg(nodes, None, "send only to these nodes (default: the whole fleet)"),
    },
)
