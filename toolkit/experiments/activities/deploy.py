"""deploy: put a release on the nodes, host by host the way it was done (`manual`, `rolling`).

Whether a deploy is all-or-none is not the experiment's choice: the `atomic` guard decides, so a
run measures the guard. With it, a skipped node or a rollout stopped half way is refused or rolled
back; without it, the steps below happen exactly as written.
"""

from __future__ import annotations

from typing import Any

from toolkit.deploy import operations
from toolkit.errors import KnightError
from toolkit.experiments.context import context
from toolkit.experiments.rollout import deploy_targets
from toolkit.lab.notes import update_notes

from .call import activity, done, refused
from .schema import (
    REQUIRED,
    Arg,
    ArgError,
    Context,
    Spec,
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


@activity(SPEC)
def deploy(
    release: str,
    skip: tuple[str, ...] | list[str] = (),
    nodes: tuple[str, ...] | list[str] | None = None,
    mode: str = "manual",
    start_at: str | None = None,
    end_at: str | None = None,
    stop_after: int | None = None,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """With the atomic guard: one all-or-none deploy of the whole fleet (a skipped node makes it
    a partial fleet, refused; a rollout stopped half way cannot happen). Without it: the nodes
    this step reaches, as the file says, each on its own (no barrier, no verification)."""
    ctx = context(configuration)
    lab, guards = ctx.lab, ctx.guards
    args = {"skip": skip, "nodes": nodes, "mode": mode, "start_at": start_at}
    args |= {"end_at": end_at, "stop_after": stop_after, "release": release}
    running = {n.name: n.release for n in lab.status().nodes}
    # A corrupt fault named by no release damages the staged copy of the one deploying.
    update_notes(lab.settings, deploying=release)
    fleet = lab.settings.node_names
    if guards.atomic:
        left_out = set(skip) | ({n for n in fleet if n not in nodes} if nodes else set())
        # Nodes already on the release are no partial fleet.
        held = sorted(n for n in left_out if running.get(n) != release)
        result = operations.deploy(lab, release, skip=held, guards=guards)
    else:
        targets = deploy_targets(args, fleet, running)
        if not targets:
            return done(SPEC.name, f"every node already on {release}")
        held = [n for n in fleet if n not in targets]
        result = operations.deploy(lab, release, skip=held, guards=guards)
    switched = sorted(n for n, v in result.nodes.items() if v["before"] != v["after"])
    if result.status == "refused" or (result.status == "rolled_back" and guards.atomic):
        return refused(SPEC.name, result.error or result.status, result.refused_by)
    if result.status == "failed" and guards.atomic:
        raise KnightError(result.error or "deploy failed")
    kept = sorted(n for n, v in result.nodes.items() if v["after"] != release)
    detail = f"{release} on {len(switched)} nodes in {result.duration_s:.1f}s"
    if kept:
        detail += f"; still elsewhere: {', '.join(kept)}"
    return done(SPEC.name, detail)
