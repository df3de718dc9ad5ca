"""deploy: put a release on the nodes, host by host the way it was done (`manual`, `rolling`).

Whether a deploy is all-or-none is not the experiment's choice: the `atomic` guard decides, so a
run measures the guard. With it, a skipped node or a rollout stopped half way is refused or rolled
back; without it, the steps below happen exactly as written.
"""

from __future__ import annotations

from typing import Any

from .schema import REQUIRED, Arg, ArgError, Context, Spec, choice, integer, node, nodes, release


def _check(args: dict[str, Any], ctx: Context) -> None:
    if args["start_at"] and args["end_at"]:
        raise ArgError("end_at: give start_at or end_at, not both")
    both = set(args["skip"]) & set(args["nodes"] or ())
    if both:
        raise ArgError(f"skip: {sorted(both)[0]} is both in nodes and skipped")


SPEC = Spec(
    name="deploy",
    summary="Copy a release to the nodes one after another and switch each to it.",
    args={
        "release": Arg(release, REQUIRED, "the release to deploy"),
        "skip": Arg(nodes, (), "nodes left out: they keep the code they run"),
        "nodes": Arg(nodes, None, "only these nodes (default: the whole fleet)"),
        "mode": Arg(
            choice("manual", "rolling"),
            "manual",
            "manual: copied by hand (2012); rolling: an automated rollout in order",
        ),
        "start_at": Arg(node, None, "the rollout order is the fleet order starting at this node"),
        "end_at": Arg(node, None, "the rollout order is the fleet order ending at this node"),
        "stop_after": Arg(
            integer(minimum=1), None, "stop after this many nodes were switched (half done)"
        ),
    },
    check=_check,
)
