"""The tables an experiment file is checked against: its modes, steady-state probes, abort
conditions and per-mode expectations, each with the rule its value is checked by.

The activities' own argument schema lives in `activities/`; the loader reads a file against both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.settings import node_key

from .activities.schema import (
    REQUIRED,
    Arg,
    Context,
    boolean,
    choice,
    integer,
    nodes,
    number,
    release,
)
from .journal import STATUSES

__all__ = ["ABORTS", "EXPECTATIONS", "MODES", "PROBES"]

#: `--mode unsafe` runs with no guard, `--mode guarded` with all of them.
MODES = ("unsafe", "guarded")


def _release_or_any(value: Any, ctx: Context) -> str:
    return "any" if value == "any" else release(value, ctx)


#: Steady-state probes: name -> the rule of its tolerance. Checked before and after the method.
PROBES: dict[str, Arg] = {
    "fleet_uniform": Arg(
        _release_or_any, "any", "every node runs one release: this one, or any one"
    ),
    "excess_shares": Arg(
        integer(minimum=0), 0, "child shares executed beyond their parents: at most this many"
    ),
    "nodes_healthy": Arg(integer(minimum=0), 0, "nodes not answering their health check: at most"),
    "orders_lost": Arg(
        integer(minimum=0), 0, "parent orders neither acked, rejected nor filled: at most"
    ),
}


@dataclass(frozen=True)
class _Abort:
    rule: Arg
    observes: str  # key of the observation the runner passes to AbortCondition.tripped


#: Abort conditions: name -> its limit and the observation it is compared with (strictly over).
ABORTS: dict[str, _Abort] = {
    "excess_shares_over": _Abort(Arg(integer(minimum=0), REQUIRED), "excess_shares"),
    "child_orders_over": _Abort(Arg(integer(minimum=0), REQUIRED), "child_orders"),
    "duration_over_s": _Abort(Arg(number(minimum=0), REQUIRED), "elapsed_s"),
}


def _outcome(doc: Mapping[str, Any], key: str) -> Any:
    return (doc.get("outcome") or {}).get(key)


def _runaway_actual(doc: Mapping[str, Any]) -> list[str]:
    return sorted(_outcome(doc, "runaway_nodes") or [], key=node_key)


def _fleet_end_met(expected: str, doc: Mapping[str, Any]) -> tuple[bool, Any]:
    fleet_end = _outcome(doc, "fleet_end") or {}
    return bool(fleet_end) and all(r == expected for r in fleet_end.values()), fleet_end


@dataclass(frozen=True)
class _Expect:
    rule: Arg
    check: Callable[
        [Any, Mapping[str, Any]], tuple[bool, Any]
    ]  # (expected, journal) -> met, actual
    doc: str


def _runaway_rule(value: Any, ctx: Context) -> Any:
    # Resolved to node names by the loader, which knows the fleet and the method's plan.
    if value in ("all", "none", "not_deployed"):
        return value
    return nodes(value, ctx)


#: Expectations per mode: name -> its rule and how a journal meets it.
EXPECTATIONS: dict[str, _Expect] = {
    "deviated": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (doc.get("deviated") == want, doc.get("deviated")),
        "the steady state did (true) or did not (false) hold after the method",
    ),
    "status": _Expect(
        Arg(choice(*STATUSES), REQUIRED),
        lambda want, doc: (doc.get("status") == want, doc.get("status")),
        "the run ends with this status",
    ),
    "runaway_nodes": _Expect(
        Arg(_runaway_rule, REQUIRED),
        lambda want, doc: (_runaway_actual(doc) == list(want), _runaway_actual(doc)),
        "exactly these nodes ran away: a list, all, none, or not_deployed (the nodes no deploy "
        "step of the method reached)",
    ),
    "excess_shares": _Expect(
        Arg(integer(minimum=0), REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "excess_shares") or 0) <= want,
            _outcome(doc, "excess_shares"),
        ),
        "at most this many excess shares",
    ),
    "excess_shares_over": _Expect(
        Arg(integer(minimum=0), REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "excess_shares") or 0) > want,
            _outcome(doc, "excess_shares"),
        ),
        "more than this many excess shares (the damage is reproduced)",
    ),
    "fleet_end": _Expect(Arg(release, REQUIRED), _fleet_end_met, "every node ends on this release"),
    "detected": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "detected_at_s") is not None) == want,
            _outcome(doc, "detected_at_s"),
        ),
        "the runaway was (or was not) detected",
    ),
    "killed": _Expect(
        Arg(boolean, REQUIRED),
        lambda want, doc: (
            (_outcome(doc, "killed_at_s") is not None) == want,
            _outcome(doc, "killed_at_s"),
        ),
        "the kill switch was (or was not) pulled",
    ),
}
