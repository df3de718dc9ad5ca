"""knight's actions for a Chaos Toolkit experiment (`"provider": {"type": "python", "module":
"toolkit.chaostoolkit.actions", "func": "deploy", "arguments": {...}}`): the very functions
knight's runner calls, each `fn(<its arguments>, configuration=None, secrets=None) -> dict`.

A wrong argument fails the activity with one line naming the activity and the argument; a
guard that says no is no failure: the action returns `{"status": "refused", "guard": ...}`, and
the `refusal` control stops the method.
"""

from __future__ import annotations

from typing import Any

from toolkit.experiments.activities.alerts import alerts
from toolkit.experiments.activities.close import close_market
from toolkit.experiments.activities.day import day
from toolkit.experiments.activities.deploy import deploy
from toolkit.experiments.activities.fault import fault
from toolkit.experiments.activities.flag import flag
from toolkit.experiments.activities.kill import kill
from toolkit.experiments.activities.load import load
from toolkit.experiments.activities.open import open_market
from toolkit.experiments.activities.rollback import rollback
from toolkit.experiments.activities.wait import wait

__all__ = [
    "alerts",
    "close_market",
    "day",
    "deploy",
    "fault",
    "flag",
    "kill",
    "load",
    "open_market",
    "rollback",
    "wait",
]


def skipped(activity: str, reason: str) -> dict[str, Any]:
    """What stands in for a method step the `refusal` control stopped: it does nothing. Not in
    `__all__`: no experiment names it, so discovery does not list it."""
    return {"activity": activity, "status": "skipped", "detail": reason}
