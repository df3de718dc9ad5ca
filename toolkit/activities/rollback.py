"""rollback: put nodes back on an earlier release (the 2012 "fix" took the seven good ones back)."""

from __future__ import annotations

from typing import Any

from .schema import Arg, ArgError, Context, Spec, nodes, release


def _check(args: dict[str, Any], ctx: Context) -> None:
    both = set(args["skip"]) & set(args["nodes"] or ())
    if both:
        raise ArgError(f"skip: {sorted(both)[0]} is both in nodes and skipped")


SPEC = Spec(
    name="rollback",
    summary="Switch nodes back to an earlier release.",
    args={
        "to": Arg(release, None, "the release to go back to (default: the catalog's baseline)"),
        "nodes": Arg(nodes, None, "only these nodes (default: the whole fleet)"),
        "skip": Arg(nodes, (), "nodes left as they are"),
    },
    check=_check,
)
