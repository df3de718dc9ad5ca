"""load: parent orders from the load generator, at a rate, for a while; every one accounted for.

`send` is shared with `open`. Each load keeps its account in the client container (the lab's
own record, `read_accounts`), so any process finds it; a load that runs until the market closes
is noted in the lab's run notes, where `close` (in this process or another) finds it.
"""

from __future__ import annotations

import os
import threading
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
#: How long a load in the background may take to start sending (a loaded machine starts the
#: load generator's process in seconds, not minutes).
START_TIMEOUT_S = 120.0
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
    a duration (`open`), it sends until the market closes: a `close` step, or the method's end.
    In the background, it returns once parent orders flow (however long a loaded machine takes
    to start the load generator), so a close can never stop one that has not begun."""
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
        detail = f"{rate} until the market closes"
    else:
        detail = f"{rate} for {args['duration_s']:g}s"
    if until_close or args.get("background", False):
        sending = threading.Event()
        worker = ctx.recorder.in_background(
            what, lambda: _work(ctx, spec, what, until_close, sending)
        )
        if not _started(ctx, sending, worker):
            detail += " (its load generator ended before sending)"
        elif not until_close:
            detail += " (in the background)"
        return done(what, detail, load=prefix)
    account = _work(ctx, spec, what)
    return done(what, detail, load=prefix, account=account)


def _started(ctx: Context, sending: threading.Event, worker: threading.Thread) -> bool:
    """Wait until the load generator in the background sends (its first progress line), so that
    the next step (a `wait`, a `close`) counts from orders flowing, not from a process that a
    loaded machine has not started yet. False when it ended first (its error is recorded)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not sending.wait(0.2):
        if not worker.is_alive() or ctx.stop.is_set():
            return sending.is_set()
        if time.monotonic() > deadline:
            raise KnightError(f"the load generator sent nothing in {START_TIMEOUT_S:g}s")
    return True


def _work(
    ctx: Context,
    spec: LoadSpec,
    what: str,
    until_close: bool = False,
    sending: threading.Event | None = None,
) -> dict[str, Any] | None:
    """Run one load to its end; its account (or its error) goes to the recorder, except for a
    load that runs until the market closes: `close_loads` accounts for that one. `sending` is
    set once the load generator reports progress: parent orders flow."""

    def progress(line: dict[str, Any]) -> None:
        if sending is not None and "progress" in line:
            sending.set()

    try:
        result = run_load(ctx.lab, spec, on_progress=progress)
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
