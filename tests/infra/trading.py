"""Whether a node can trade at all, from its `GET /version`: a check that meets a node with its
kill switch thrown, its intake paused or its orders fenced says so, instead of failing later on
orders that were all rejected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def trading_problem(name: str, version: Mapping[str, Any]) -> str | None:
    """Why `name` refuses every order it is sent, or None when it trades."""
    if version.get("trading") == "killed":
        return (
            f"{name}: the kill switch is thrown (trading killed), so it rejects every order; "
            "an experiment's rollbacks leave it so: `knight resume` (or `knight lab reset`) "
            "lets it trade again"
        )
    fenced = (version.get("fleet") or {}).get("fenced")
    if fenced:
        return f"{name}: fenced, so it refuses every order: {fenced}"
    intake = version.get("intake")
    if intake not in (None, "open"):
        return f"{name}: its intake is {intake}, so it takes no new order (`knight lab reset` opens it)"
    return None
