"""load: parent orders from the load generator, at a rate, for a while; every one accounted for."""

from __future__ import annotations

from typing import Any

from toolkit.errors import KnightError
from toolkit.experiments.state import RunState
from toolkit.lab.load import LoadSpec, run_load

from .schema import Arg, Spec, StepOutcome, boolean, integer, nodes, number

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


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    return send(run, args, "load")


#: An `open` without a duration sends until the market closes; this bounds it all the same.
OPEN_MAX_S = 3600.0


def send(run: RunState, args: dict[str, Any], what: str) -> StepOutcome:
    """Parent orders through the load generator (in the client container); in the background,
    the next steps run meanwhile and the account is collected before the last probes. Without
    a duration (`open`), it sends until the market closes: a `close` step, or the method's end."""
    until_close = args["duration_s"] is None
    prefix = f"{what}{len(run.loads) + len(run.background)}"
    spec = LoadSpec(
        nodes=tuple(args.get("nodes") or ()),
        rate=args["rate"],
        duration_s=OPEN_MAX_S if until_close else args["duration_s"],
        rlp_share=args["rlp_share"],
        qty=args["qty"],
        drain_s=3.0,
        prefix=prefix,
    )

    def work() -> None:
        try:
            result = run_load(run.lab, spec)
        except KnightError as exc:
            run.load_errors.append(str(exc))
            run.event("error", None, f"{what}: {exc}")
            return
        run.loads.append(result)
        run.event(
            f"{what}_done",
            None,
            f"{result.sent} parent orders: {result.filled} filled, {result.cancelled} "
            f"cancelled, {result.rejected} rejected, {result.working} working, "
            f"{result.unanswered} unanswered",
        )

    rate = f"{args['rate']:g} parent orders/s"
    if until_close:
        run.open_loads[prefix] = run.in_background(what, work)
        return StepOutcome("done", f"{rate} until the market closes")
    detail = f"{rate} for {args['duration_s']:g}s"
    if args.get("background", False):
        run.in_background(what, work)
        return StepOutcome("done", detail + " (in the background)")
    work()
    return StepOutcome("done", detail)
