"""The 2012 way: each alert becomes an e-mail appended to an mbox file that nobody reads, and
nothing else happens (in 2012, 97 of them arrived from 8:01 a.m.; nobody acted)."""

from __future__ import annotations

import mailbox
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from toolkit.monitor.alert import Alert

__all__ = ["Mailbox"]

SENDER = "smars-monitor@knight.lab"


def message(alert: Alert) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = f"{alert.owner}@knight.lab"
    msg["Date"] = formatdate(alert.raised)
    msg["Subject"] = f"[{alert.severity}] {alert.rule} on {alert.node}"
    msg["X-Knight-Rule"] = alert.rule
    msg["X-Knight-Action"] = alert.action
    msg.set_content(
        f"{alert.summary}\n\n"
        f"value:      {alert.value:g}\n"
        f"first seen: {formatdate(alert.t)}\n"
        f"runbook:    {alert.runbook}\n"
        f"action:     {alert.action}\n"
    )
    return msg


class Mailbox:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sent = 0

    def handle(self, alerts: Sequence[Alert]) -> None:
        box = mailbox.mbox(self.path)
        box.lock()
        try:
            for alert in alerts:
                box.add(message(alert))
                self.sent += 1
            box.flush()
        finally:
            box.unlock()
            box.close()

    def close(self) -> None:
        pass
