"""Alertmanager's webhook body (version 4) as the monitor's alerts: the same rule names, owners,
severities, actions and runbooks, since monitor/prometheus/rules.yml carries them as labels and
annotations (a test keeps the two rule sets in step)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from .alert import ACTIONS, SEVERITIES, Action, Alert, Severity

__all__ = ["alerts_of", "epoch"]


def epoch(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Alertmanager writes it (nanoseconds and
    a Z included)."""
    return datetime.fromisoformat(stamp).timestamp()


def alerts_of(payload: Any) -> list[Alert]:
    """The firing alerts of one notification. `t` and `raised` are when Prometheus fired the
    alert (its `startsAt`); an alert carries no value through Alertmanager (0)."""
    if not isinstance(payload, dict):
        return []
    found = []
    for item in payload.get("alerts") or []:
        if not isinstance(item, dict) or item.get("status") != "firing":
            continue
        labels = item.get("labels") or {}
        notes = item.get("annotations") or {}
        fired = epoch(item["startsAt"])
        severity = labels.get("severity")
        action = labels.get("action")
        found.append(
            Alert(
                t=fired,
                raised=fired,
                rule=str(labels.get("alertname", "unnamed")),
                node=str(labels.get("node") or labels.get("instance", "").split(":")[0]),
                severity=cast(Severity, severity if severity in SEVERITIES else "info"),
                owner=str(labels.get("owner", "unowned")),
                runbook=str(notes.get("runbook", "")),
                action=cast(Action, action if action in ACTIONS else "none"),
                summary=str(notes.get("summary", "")),
                value=0.0,
            )
        )
    return found
