"""The order a deploy or rollback step reaches the nodes of the fleet, computed from the step's
arguments alone: the loader's plan, the expectations and the deploy activity share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["deploy_targets", "rollback_targets", "rollout_order"]


def rollout_order(
    fleet: Sequence[str],
    targets: Iterable[str] | None = None,
    start_at: str | None = None,
    end_at: str | None = None,
) -> list[str]:
    """The fleet in order, turned to start at `start_at` or end at `end_at`, kept to `targets`."""
    order = list(fleet)
    if start_at is not None:
        i = order.index(start_at)
        order = order[i:] + order[:i]
    elif end_at is not None:
        i = order.index(end_at)
        order = order[i + 1 :] + order[: i + 1]
    if targets is not None:
        wanted = set(targets)
        order = [n for n in order if n in wanted]
    return order


def deploy_targets(
    args: Mapping[str, Any], fleet: Sequence[str], running: Mapping[str, str | None]
) -> list[str]:
    """The nodes a deploy step with these `args` switches, in order, when it runs as written
    (without the atomic guard): the rollout order without the skipped nodes and those already on
    the release, cut after `stop_after`. `running` is each node's release now."""
    order = rollout_order(fleet, args["nodes"], args["start_at"], args["end_at"])
    order = [n for n in order if n not in args["skip"] and running.get(n) != args["release"]]
    if args["stop_after"] is not None:
        order = order[: args["stop_after"]]
    return order


def rollback_targets(args: Mapping[str, Any], fleet: Sequence[str]) -> list[str]:
    """The nodes a rollback step with these `args` switches back, in fleet order: its `nodes`
    (default: the whole fleet) without the skipped ones."""
    targets = args["nodes"] or fleet
    return [n for n in fleet if n in targets and n not in args["skip"]]
