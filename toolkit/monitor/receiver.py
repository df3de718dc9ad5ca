"""The Prometheus path of the monitor: the alerts Alertmanager sent to the lab's webhook
receiver, read by knight on the host and acted on like the built-in monitor's.

Alertmanager posts each notification to the receiver container on the lab network
(monitor/image/receiver.py); `AlertReceiver` long-polls it through its port on 127.0.0.1, so
a notification reaches knight as soon as it arrives. A notification of the `kill` webhook (the
route of every critical alert) throws the kill switch on every node through the toolkit's
admin clients (the nodes' tokens never leave the host); every alert is recorded, with its owner
and runbook, and `stop()` returns the same MonitorResult the built-in monitor does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from toolkit.errors import LabError

from .actions import Action, KillRecord, KillSwitch
from .alert import Alert
from .monitor import MonitorResult
from .webhook import alerts_of

__all__ = ["KILL_RECEIVER", "AlertReceiver", "Inbox", "wait_quiet"]

#: The webhook Alertmanager routes critical alerts to (monitor/alertmanager/alertmanager.yml).
KILL_RECEIVER = "kill"


class Inbox(Protocol):
    """The receiver's API, as toolkit.lab.admin.AdminClient reaches it."""

    name: str

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any: ...


class AlertReceiver:
    """Reads the receiver's notifications from the moment it starts; hands every alert to
    `actions`, and those of the `kill` webhook to `kill` too (None: nobody acts, 2012)."""

    def __init__(
        self,
        inbox: Inbox,
        actions: Sequence[Action] = (),
        kill: KillSwitch | None = None,
        wait_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inbox = inbox
        self.actions = list(actions)
        self.kill = kill
        self.wait_s = wait_s
        self.clock = clock
        self.rounds = 0
        self.errors: list[str] = []
        #: When each notification reached the receiver (epoch seconds), by its number.
        self.received: dict[int, float] = {}
        #: When each notification of the kill webhook with a new alert reached the receiver.
        self.kill_notified: list[float] = []
        self._seen: set[tuple[str, str, float]] = set()
        self._alerts: list[Alert] = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.stopped: float | None = None

    def _notifications(self, since: int, wait_s: float) -> dict[str, Any]:
        resp = self.inbox.request("GET", f"/notifications?since={since}&wait={wait_s:g}")
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise LabError(f"receiver: /notifications answered {resp.status}: {resp.body}")
        return resp.body

    def poll(self, wait_s: float | None = None) -> list[Alert]:
        """One long poll: the alerts that arrived since the last, recorded and acted on (the
        kill switch once for all the kill webhook's notifications that came together)."""
        doc = self._notifications(self._next, self.wait_s if wait_s is None else wait_s)
        self.rounds += 1
        raised: list[Alert] = []
        killing: list[Alert] = []
        for note in doc.get("notifications", []):
            self._next = max(self._next, int(note["seq"]))
            self.received[int(note["seq"])] = float(note["received"])
            fresh = [a for a in alerts_of(note.get("payload")) if self._first(a)]
            raised += fresh
            if fresh and note.get("receiver") == KILL_RECEIVER:
                self.kill_notified.append(float(note["received"]))
                killing += fresh
        if raised:
            self._act(raised, killing)
        return raised

    def _first(self, alert: Alert) -> bool:
        """Alertmanager may send an alert again (a retry, a changed group): act once."""
        key = (alert.rule, alert.node, alert.raised)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _act(self, alerts: list[Alert], killing: list[Alert]) -> None:
        with self._lock:
            self._alerts.extend(alerts)
        handled = [(action, alerts) for action in self.actions]
        if killing and self.kill is not None:
            handled.append((self.kill, killing))
        for action, which in handled:
            try:
                action.handle(which)
            except Exception as e:  # one failing action must not stop the next
                self.errors.append(f"action {type(action).__name__}: {e}")

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> AlertReceiver:
        """From now on: what the receiver got before is not this watch's."""
        if self._thread is not None:
            raise RuntimeError("receiver already started")
        self._next = int(self._notifications(0, 0).get("next", 0))
        self.started = self.clock()
        self._thread = threading.Thread(target=self._run, name="alert-receiver", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as e:  # a slow engine: note it, poll again
                self.errors.append(f"poll {self.rounds}: {type(e).__name__}: {e}")
                self._stop.wait(0.2)

    def stop(self, timeout: float | None = None) -> MonitorResult:
        """Stop polling (the poll under way ends within `wait_s`), close the actions."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait_s + 10 if timeout is None else timeout)
        if self.stopped is None:
            self.stopped = self.clock()
            for action in [*self.actions, *([self.kill] if self.kill else [])]:
                action.close()
        return self.result()

    @property
    def alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts)

    @property
    def kills(self) -> list[KillRecord]:
        return list(self.kill.kills) if self.kill else []

    def result(self) -> MonitorResult:
        return MonitorResult.of(self, self.wait_s)


def wait_quiet(alertmanager: Any, timeout: float = 120.0) -> None:
    """Wait until Alertmanager holds no active critical alert. One still firing from an earlier
    run would not be sent again (Alertmanager sends an alert once until it resolves), so a
    watch starts only once the last run's alerts have resolved."""
    deadline = time.monotonic() + timeout
    path = (
        "/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=severity%3D%22critical%22"
    )
    while True:
        active = alertmanager.get(path)
        if isinstance(active, list) and not active:
            return
        if time.monotonic() >= deadline:
            names = sorted(
                {a.get("labels", {}).get("alertname", "?") for a in active}
                if isinstance(active, list)
                else {str(active)}
            )
            raise LabError(
                f"alertmanager: critical alerts still active after {timeout:.0f}s "
                f"({', '.join(names)}): the lab has not settled since the last run"
            )
        time.sleep(0.5)
