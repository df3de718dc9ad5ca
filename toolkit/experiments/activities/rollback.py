"""rollback: put nodes back on an earlier release (the 2012 "fix" took the seven good ones back)."""

from __future__ import annotations

from typing import Any

from toolkit.deploy import operations
from toolkit.errors import KnightError
from toolkit.experiments.context import context
from toolkit.experiments.rollout import rollback_targets

from .call import activity, done, refused
from .schema import Arg, Spec, check_skip_apart_from_nodes, nodes, release

SPEC = Spec(
    name="rollback",
    summary="Switch nodes back to an earlier release.",
    args={
        "to": Arg(release, None, "the release to go back to (default: the catalog's baseline)"),
        "nodes": Arg(nodes, None, "only these nodes (default: the whole fleet)"),
        "skip": Arg(nodes, (), "nodes left as they are"),
    },
    check=check_skip_apart_from_nodes,
)


@activity(SPEC)
def rollback(
    to: str | None = None,
    nodes: tuple[str, ...] | list[str] | None = None,
    skip: tuple[str, ...] | list[str] = (),
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll back: with the rollback guard the planner decides first; with the atomic guard the
    whole fleet goes back at once (nodes already on the target are no partial fleet)."""
    ctx = context(configuration)
    lab, guards = ctx.lab, ctx.guards
    target = to or lab.catalog.baseline
    running = {n.name: n.release for n in lab.status().nodes}
    fleet = lab.settings.node_names
    chosen = rollback_targets({"to": to, "nodes": nodes, "skip": skip}, fleet)
    held = [n for n in fleet if n not in chosen]
    if guards.atomic:
        held = [n for n in held if running.get(n) != target]
    result = operations.rollback(lab, to=target, guards=guards, skip=held)
    if result.status == "refused" or (result.status == "rolled_back" and guards.atomic):
        detail = result.error or result.status
        if result.plan and result.plan.get("sequence"):
            steps = "; ".join(s["command"] for s in result.plan["sequence"])
            detail += f" — safe sequence: {steps}"
        return refused(SPEC.name, detail, result.refused_by)
    if result.status == "failed" and guards.atomic:
        raise KnightError(result.error or "rollback failed")
    moved = sorted(n for n, v in result.nodes.items() if v["before"] != v["after"])
    return done(SPEC.name, f"{', '.join(moved) or 'no node'} back on {target}")
