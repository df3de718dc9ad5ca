"""rollback: put nodes back on an earlier release (the 2012 "fix" took the seven good ones back)."""

from __future__ import annotations

from typing import Any

from toolkit.deploy.operations import rollback
from toolkit.experiments.rollout import rollback_targets
from toolkit.experiments.state import RunState

from .schema import Arg, Spec, StepOutcome, check_skip_apart_from_nodes, nodes, release

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


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    """Roll back: with the rollback guard the planner decides first; with the atomic guard the
    whole fleet goes back at once (nodes already on the target are no partial fleet)."""
    lab = run.lab
    target = args["to"] or lab.catalog.baseline
    running = {n.name: n.release for n in lab.status().nodes}
    fleet = lab.settings.node_names
    chosen = rollback_targets(args, fleet)
    skip = [n for n in fleet if n not in chosen]
    if run.guards.atomic:
        skip = [n for n in skip if running.get(n) != target]
    result = rollback(lab, to=target, guards=run.guards, skip=skip)
    if result.status == "refused" or (result.status == "rolled_back" and run.guards.atomic):
        detail = result.error or result.status
        if result.plan and result.plan.get("sequence"):
            steps = "; ".join(s["command"] for s in result.plan["sequence"])
            detail += f" — safe sequence: {steps}"
        return StepOutcome("refused", detail, result.refused_by)
    if result.status == "failed" and run.guards.atomic:
        return StepOutcome("failed", result.error or "rollback failed")
    moved = sorted(n for n, v in result.nodes.items() if v["before"] != v["after"])
    return StepOutcome("done", f"{', '.join(moved) or 'no node'} back on {target}")
