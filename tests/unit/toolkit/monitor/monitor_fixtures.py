"""What the monitor's tests share: a router's metrics snapshot with neutral values, changed only
where a test says. A module of its own name, imported by name (tests/unit/toolkit is on the path
of its own tests)."""

from __future__ import annotations

from typing import Any

from smars.metrics import Snapshot, render

#: A quiet router on 7.1.0: nothing sent, nothing rejected, trading, intake open, venue up.
QUIET: dict[str, Any] = dict(
    node="smars-1",
    release="7.1.0",
    tree="aaa111",
    acked=0,
    rejects={},
    children={"sor": 0},
    executions=0,
    shares=0,
    overfill_shares=0,
    working=0,
    trading_active=True,
    intake_open=True,
    venue_connected=True,
    flags={},
    flag_errors=0,
)


def snapshot(**changes: Any) -> Snapshot:
    return Snapshot(**{**QUIET, **changes})


def metrics_text(**changes: Any) -> str:
    """The /metrics text of `snapshot(**changes)`."""
    return render(snapshot(**changes))
