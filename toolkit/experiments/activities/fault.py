"""fault: break one node (kill, stop, pause, partition, delay, corrupt a staged artifact).

Every fault has an undo; it runs after `duration_s`, or at the end of the run at the latest.
"""

from __future__ import annotations

from typing import Any

from toolkit.chaos.kinds import make
from toolkit.experiments.state import RunState, undo_fault

from .schema import (
    REQUIRED,
    Arg,
    ArgError,
    Context,
    Spec,
    StepOutcome,
    choice,
    integer,
    node,
    number,
    release,
)

KINDS = ("kill", "stop", "pause", "partition", "delay", "corrupt")


def _check(args: dict[str, Any], ctx: Context) -> None:
    if args["delay_ms"] is not None and args["kind"] != "delay":
        raise ArgError("delay_ms: only a delay fault has a delay")
    if args["release"] is not None and args["kind"] != "corrupt":
        raise ArgError("release: only a corrupt fault names a staged release")
    if args["kind"] == "delay" and args["delay_ms"] is None:
        args["delay_ms"] = 200


SPEC = Spec(
    name="fault",
    summary="Inject a fault on one node.",
    args={
        "kind": Arg(choice(*KINDS), REQUIRED, "what happens to the node"),
        "node": Arg(node, REQUIRED, "the node it happens to"),
        "duration_s": Arg(number(minimum=0), None, "undo after this long (default: at the end)"),
        "delay_ms": Arg(integer(1, 60_000), None, "delay: added latency (default 200 ms)"),
        "release": Arg(release, None, "corrupt: whose staged copy (default: the one deploying)"),
    },
    check=_check,
)


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    """Inject the fault; its undo runs after `duration_s`, or at the end of the run."""
    options: dict[str, Any] = {}
    if args["kind"] == "delay":
        options["ms"] = args["delay_ms"]
    if args["kind"] == "corrupt":
        options["release"] = args["release"] or run.deploying or run.lab.catalog.baseline
    fault = make(args["kind"], run.lab, args["node"], **options)
    fault.inject()
    if run.journal.fault_t is None:
        run.journal.mark_fault()
    if args["duration_s"] is None:
        run.faults.append(fault)
        return StepOutcome("done", f"{fault.SUMMARY} until the end of the run")

    def later() -> None:
        run.stop.wait(args["duration_s"])  # or until the run ends
        undo_fault(run, fault)

    run.in_background(f"undo-{args['kind']}-{args['node']}", later)
    return StepOutcome("done", f"{fault.SUMMARY} for {args['duration_s']:g}s")
