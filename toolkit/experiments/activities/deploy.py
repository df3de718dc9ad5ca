"""deploy: put a release on the nodes, host by host the way it was done (`manual`, `rolling`).

Whether a deploy is all-or-none is not the experiment's choice: the `atomic` guard decides, so a
run measures the guard. With it, a skipped node or a rollout stopped half way is refused or rolled
back; without it, the steps below happen exactly as written.
"""

from __future__ import annotations

from typing import Any

from toolkit.deploy.operations import deploy
from toolkit.experiments.rollout import deploy_targets
from toolkit.experiments.state import RunState

from .schema import (
    REQUIRED,
    Arg,
    ArgError,
    Context,
    Spec,
    StepOutcome,
    check_skip_apart_from_nodes,
    choice,
    integer,
    node,
    nodes,
    release,
)


def _check(args: dict[str, Any], ctx: Context) -> None:
    if args["start_at"] and args["end_at"]:
        raise ArgError("end_at: give start_at or end_at, not both")
    check_skip_apart_from_nodes(args, ctx)


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


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    """With the atomic guard: one all-or-none deploy of the whole fleet (a skipped node makes it
    a partial fleet, refused; a rollout stopped half way cannot happen). Without it: the nodes
    this step reaches, one after another, as the file says."""
    release = args["release"]
    lab = run.lab
    running = {n.name: n.release for n in lab.status().nodes}
    run.deploying = release
    if run.guards.atomic:
        left_out = set(args["skip"])
        if args["nodes"]:
            left_out |= {n for n in lab.settings.node_names if n not in args["nodes"]}
        # Nodes already on the release are no partial fleet.
        skip = sorted(n for n in left_out if running.get(n) != release)
        result = deploy(lab, release, skip=skip, guards=run.guards)
    else:
        fleet = lab.settings.node_names
        targets = deploy_targets(args, fleet, running)
        skip = [n for n in fleet if n not in targets]
        if not targets:
            return StepOutcome("done", f"every node already on {release}")
        result = deploy(lab, release, skip=skip, guards=run.guards)
    switched = sorted(n for n, v in result.nodes.items() if v["before"] != v["after"])
    if result.status == "refused" or (result.status == "rolled_back" and run.guards.atomic):
        return StepOutcome("refused", result.error or result.status, result.refused_by)
    if result.status == "failed" and run.guards.atomic:
        return StepOutcome("failed", result.error or "deploy failed")
    kept = sorted(n for n, v in result.nodes.items() if v["after"] != release)
    detail = f"{release} on {len(switched)} nodes in {result.duration_s:.1f}s"
    if kept:
        detail += f"; still elsewhere: {', '.join(kept)}"
    return StepOutcome("done", detail)
