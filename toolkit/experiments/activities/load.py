"""load: parent orders from the load generator, at a rate, for a while; every one accounted for.

`send` is shared with `open`. Each load keeps its account in the client container (the lab's
own record, `read_accounts`), so any process finds it; a load that runs until the market closes
is noted in the lab's run notes, where `close` (in this process or another) finds it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from toolkit.errors import KnightError
from toolkit.experiments.context import Context, context
from toolkit.lab.load import LoadSpec, read_accounts, run_load, stop_load
from toolkit.lab.notes import read_notes, update_notes

from .call import activity, done
from .schema import Arg, Spec, boolean, integer, nodes, number

__all__ = ["OPEN_MAX_S", "SPEC", "close_loads", "load", "send"]

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

#: An `open` without a duration sends until the market closes; this bounds it all the same.
OPEN_MAX_S = 3600.0
#: How long the market may take to close: every open load generator stopped and accounted for.
CLOSE_TIMEOUT_S = 60.0
#: The run notes' key: prefixes of the loads that send until the market closes.
UNTIL_CLOSE = "until_close"


@activity(SPEC)
def load(
    rate: float = 200.0,
    duration_s: float = 5.0,
    background: bool = False,
    rlp_share: float = 0.0,
    qty: int = 100,
    nodes: tuple[str, ...] | list[str] | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parent orders for `duration_s`; in the background, the next steps run meanwhile."""
    args = {"rate": rate, "duration_s": duration_s, "background": background}
    args |= {"rlp_share": rlp_share, "qty": qty, "nodes": nodes}
    return send(context(configuration), args, SPEC.name)


def send(ctx: Context, args: dict[str, Any], what: str) -> dict[str, Any]:
    """Parent orders through the load generator (in the client container); in the background,
    the next steps run meanwhile and the account is collected before the last probes. Without
    a duration (`open`), it sends until the market closes: a `close` step, or the method's end."""
    until_close = args["duration_s"] is None
    prefix = f"{what}_{os.urandom(3).hex()}"
    spec = LoadSpec(
        nodes=tuple(args.get("nodes") or ()),
        rate=args["rate"],
        duration_s=OPEN_MAX_S if until_close else args["duration_s"],
        rlp_share=args["rlp_share"],
        qty=args["qty"],
        drain_s=3.0,
        prefix=prefix,
        keep_account=True,
    )
    rate = f"{args['rate']:g} parent orders/s"
    if until_close:
        settings = ctx.lab.settings
        update_notes(
            settings, **{UNTIL_CLOSE: [*read_notes(settings).get(UNTIL_CLOSE, []), prefix]}
        )
        ctx.recorder.in_background(what, lambda: _work(ctx, spec, what, until_close=True))
        return done(what, f"{rate} until the market closes", load=prefix)
    detail = f"{rate} for {args['duration_s']:g}s"
    if args.get("background", False):
        ctx.recorder.in_background(what, lambda: _work(ctx, spec, what))
        return done(what, detail + " (in the background)", load=prefix)
    account = _work(ctx, spec, what)
    return done(what, detail, load=prefix, account=account)


def _work(
    ctx: Context, spec: LoadSpec, what: str, until_close: bool = False
) -> dict[str, Any] | None:
    """Run one load to its end; its account (or its error) goes to the recorder, except for a
    load that runs until the market closes: `close_loads` accounts for that one."""
    try:
        result = run_load(ctx.lab, spec)
    except KnightError as exc:
        if until_close and not _forget(ctx, spec.prefix or ""):
            return None  # the close accounted for it already
        _load_error(ctx, what, str(exc))
        return None
    if not until_close:
        ctx.recorder.load_account(what, result)
    return result.raw


def _load_error(ctx: Context, what: str, error: str) -> None:
    """A load that could not account for its orders: they count as lost, in every process."""
    settings = ctx.lab.settings
    update_notes(settings, load_errors=int(read_notes(settings).get("load_errors", 0)) + 1)
    ctx.recorder.load_error(what, error)


def _forget(ctx: Context, prefix: str) -> bool:
    """Take `prefix` off the loads that run until the close; False when it was not on them."""
    settings = ctx.lab.settings
    pending = read_notes(settings).get(UNTIL_CLOSE, [])
    if prefix not in pending:
        return False
    update_notes(settings, **{UNTIL_CLOSE: [p for p in pending if p != prefix] or None})
    return True


def close_loads(ctx: Context, timeout: float = CLOSE_TIMEOUT_S) -> list[str] | None:
    """End every load that runs until the market closes and wait for their accounts (each goes
    to the recorder); the prefixes closed, None when the market was not open. A load generator
    may not have started yet when this is called, so it is asked to stop until its account is
    there."""
    pending = list(read_notes(ctx.lab.settings).get(UNTIL_CLOSE, []))
    if not pending:
        return None
    closed: list[str] = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for prefix in pending:
            stop_load(ctx.lab, prefix)
        time.sleep(0.5)
        accounts = read_accounts(ctx.lab)
        for prefix in [p for p in pending if p in accounts]:
            if _forget(ctx, prefix):
                ctx.recorder.load_account(prefix.split("_")[0], accounts[prefix])
            pending.remove(prefix)
            closed.append(prefix)
        pending = [p for p in pending if p in read_notes(ctx.lab.settings).get(UNTIL_CLOSE, [])]
    if pending:
        raise KnightError(f"the market did not close: {', '.join(pending)} still sending")
    return closed
