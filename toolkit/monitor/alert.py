"""An alert: what fired, on which node, who owns it, how bad it is and what is done about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["ACTIONS", "SEVERITIES", "Action", "Alert", "Severity"]

Severity = Literal["critical", "warning", "info"]
Action = Literal["kill", "page", "none"]

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
#: `kill`: the kill switch on every node of the fleet; `page`: a person is told; `none`: recorded.
ACTIONS: tuple[str, ...] = ("kill", "page", "none")


@dataclass(frozen=True)
class Alert:
    """One alert, raised once per rule and node until its condition clears.

    `t` is the time (epoch seconds) of the scrape round in which the condition was first seen;
    `raised` is when the alert fired (later than `t` only for a rule with a hold, `for_s`).
    """

    t: float
    raised: float
    rule: str
    node: str
    severity: Severity
    owner: str
    runbook: str
    action: Action
    summary: str
    value: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
