"""fault: break one node (kill, stop, pause, partition, delay, corrupt a staged artifact).

Every fault has an undo; it runs after `duration_s`, or at the end of the run at the latest.
"""

from __future__ import annotations

from typing import Any

from toolkit.chaos.kinds import make
from toolkit.experiments.context import context
from toolkit.experiments.state import undo_fault
from toolkit.lab.notes import read_notes

from .call import activity, done
from .schema import (
    REQUIRED,
    Arg,
    ArgError,
    Context,
    Spec,
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


@activity(SPEC)
def fault(
    kind: str,
    node: str,
    duration_s: float | None = None,
    delay_ms: int | None = None,
    release: str | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inject the fault; its undo runs after `duration_s`, or at the end of the run (`knight lab
    halt-all` finds it in the lab however the run ended)."""
    ctx = context(configuration)
    lab = ctx.lab
    options: dict[str, Any] = {}
    if kind == "delay":
        options["ms"] = delay_ms
    if kind == "corrupt":
        options["release"] = release or read_notes(lab.settings).get("deploying")
        options["release"] = options["release"] or lab.catalog.baseline
    injected = make(kind, lab, node, **options)
    injected.inject()
    ctx.recorder.mark_fault()
    if duration_s is None:
        ctx.recorder.until_end(injected)
        return done(SPEC.name, f"{injected.SUMMARY} until the end of the run")

    def later() -> None:
        ctx.stop.wait(duration_s)  # or until the run ends
        undo_fault(ctx.recorder, injected)

    ctx.recorder.in_background(f"undo-{kind}-{node}", later)
    return done(SPEC.name, f"{injected.SUMMARY} for {duration_s:g}s")
