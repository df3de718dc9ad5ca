"""What happens to alerts, one module each: `record` (JSONL), `mailbox` (the 2012 way: an
e-mail nobody reads) and `kill_switch` (guarded: every node of the fleet stops trading).

An action is any object with `handle(alerts)`, called once per scrape round with the alerts
raised in it (never empty), and `close()`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from toolkit.monitor.alert import Alert

from .kill_switch import KillRecord, KillSwitch
from .mailbox import Mailbox
from .record import Record

__all__ = ["Action", "KillRecord", "KillSwitch", "Mailbox", "Record"]


class Action(Protocol):
    def handle(self, alerts: Sequence[Alert]) -> None: ...

    def close(self) -> None: ...
