"""Guarded: a critical alert turns the kill switch on, on every node of the fleet at once
(`POST /kill` through the admin API, all nodes concurrently), not only on the node that alerted:
in 2012 the fault moved from one server to all eight within minutes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from toolkit.monitor.alert import Alert

from .record import Record

__all__ = ["KillRecord", "KillSwitch", "Killable"]


class Killable(Protocol):
    """A node's admin API (toolkit.admin.AdminClient is one)."""

    name: str

    def post(self, path: str, body: Any = None) -> Any: ...


@dataclass
class KillRecord:
    """One use of the kill switch: when it started, when the last node answered, what each
    node answered (`{"ok", "t", "answer"}` or `{"ok": false, "t", "error"}`)."""

    t: float
    done: float
    trigger: list[str]  # "rule@node" of the alerts that pulled it
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(n["ok"] for n in self.nodes.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class KillSwitch:
    def __init__(
        self,
        nodes: Sequence[Killable],
        record: Record | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nodes = list(nodes)
        self.record = record
        self.clock = clock
        self.kills: list[KillRecord] = []
        # Started now, not at the alert: threads ready when the kill has to be fast.
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.nodes)), thread_name_prefix="kill"
        )

    def handle(self, alerts: Sequence[Alert]) -> None:
        trigger = [f"{a.rule}@{a.node}" for a in alerts if a.action == "kill"]
        if trigger:
            self.kill(trigger)

    def kill(self, trigger: list[str]) -> KillRecord:
        t = self.clock()
        futures = {node.name: self._pool.submit(self._one, node) for node in self.nodes}
        answers = {name: f.result() for name, f in futures.items()}
        kill = KillRecord(t=t, done=self.clock(), trigger=trigger, nodes=answers)
        self.kills.append(kill)
        if self.record is not None:
            self.record.write("kill", kill.to_json())
        return kill

    def _one(self, node: Killable) -> dict[str, Any]:
        try:
            answer = node.post("/kill")
        except Exception as e:  # one node's failure must not hide the others' answers
            return {"ok": False, "t": self.clock(), "error": str(e)}
        return {"ok": True, "t": self.clock(), "answer": answer}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
