"""The monitor loop: every `interval_s`, scrape every node's /metrics concurrently, evaluate every
rule, raise each alert once per rule and node until its condition clears, and hand the new
alerts to the actions. A node that does not answer never holds up the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolkit.errors import ConfigError

from .actions import Action, KillRecord
from .alert import Alert
from .fleet import Fleet, NodeState, NodeView, Sample, parse
from .rule import Rule
from .rules import default_rules

__all__ = ["MAX_INTERVAL_S", "Monitor", "MonitorResult", "ScrapeTarget"]

#: The issue's bound on the scrape interval: a runaway must be seen within half a second.
MAX_INTERVAL_S = 0.25
#: Times are floats: a hold of 1 s after five 0.2 s rounds must count as 1 s.
_EPSILON_S = 1e-6


class ScrapeTarget(Protocol):
    """A node's admin API as the monitor reads it (toolkit.admin.AdminClient is one)."""

    name: str

    def metrics(self) -> str: ...


@dataclass
class MonitorResult:
    """What a monitor run saw and did, as plain data (times are epoch seconds)."""

    interval_s: float
    started: float | None
    stopped: float | None
    rounds: int
    alerts: list[Alert] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, path: Any, interval_s: float) -> MonitorResult:
        """What one path of the monitor (the scraper, the Prometheus receiver) holds now: its
        `started`, `stopped`, `rounds`, `alerts`, `kills` (in time order) and `errors`."""
        return cls(
            interval_s=interval_s,
            started=path.started,
            stopped=path.stopped,
            rounds=path.rounds,
            alerts=path.alerts,
            kills=sorted(path.kills, key=lambda k: k.t),
            errors=list(path.errors),
        )

    def first_alert(self, action: str | None = None) -> Alert | None:
        """The earliest alert raised (of one action, e.g. "kill", when given)."""
        chosen = [a for a in self.alerts if action is None or a.action == action]
        return min(chosen, key=lambda a: a.raised, default=None)

    def timeline(self) -> list[dict[str, Any]]:
        """Alerts and kills as journal timeline entries `{t, kind, node, detail}`, in time order
        (t in epoch seconds: the journal makes them relative to its fault)."""
        entries = [
            {
                "t": a.raised,
                "kind": "alert",
                "node": a.node,
                "detail": {
                    "rule": a.rule,
                    "severity": a.severity,
                    "owner": a.owner,
                    "action": a.action,
                    "runbook": a.runbook,
                    "summary": a.summary,
                    "value": a.value,
                    "first_seen": a.t,
                },
            }
            for a in self.alerts
        ]
        entries += [
            {
                "t": k.t,
                "kind": "kill",
                "node": None,
                "detail": {
                    "trigger": k.trigger,
                    "done": k.done,
                    "ok": k.ok,
                    "nodes": {n: answer["ok"] for n, answer in k.nodes.items()},
                },
            }
            for k in self.kills
        ]
        return sorted(entries, key=lambda e: e["t"])

    def to_json(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "started": self.started,
            "stopped": self.stopped,
            "rounds": self.rounds,
            "alerts": [a.to_json() for a in self.alerts],
            "kills": [k.to_json() for k in self.kills],
            "errors": list(self.errors),
        }


class Monitor:
    """Scrapes `targets`, evaluates `rules`, raises alerts, runs `actions`.

    `poll()` is one round (tests drive it with a fake clock); `start()` runs rounds every
    `interval_s` on a thread until `stop()`, which returns the MonitorResult.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        rules: Sequence[Rule] | None = None,
        actions: Sequence[Action] = (),
        interval_s: float = 0.2,
        scrape_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
        history_s: float = 120.0,
    ) -> None:
        if not 0 < interval_s <= MAX_INTERVAL_S:
            raise ConfigError(
                f"monitor interval {interval_s} s: expected more than 0 and at most "
                f"{MAX_INTERVAL_S} s"
            )
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ConfigError(f"monitor targets: duplicate node names in {names}")
        self.targets = list(targets)
        self.rules = list(default_rules() if rules is None else rules)
        self.actions = list(actions)
        self.interval_s = interval_s
        self.scrape_timeout_s = interval_s if scrape_timeout_s is None else scrape_timeout_s
        self.clock = clock
        self.fleet = Fleet({n: NodeView(n, history_s) for n in names})
        self.rounds = 0
        self.errors: list[str] = []
        self._alerts: list[Alert] = []
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], float] = {}  # (rule, node) -> first seen
        self._firing: set[tuple[str, str]] = set()
        self._inflight: dict[str, Future[Sample]] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.targets)), thread_name_prefix="scrape"
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._states: dict[str, NodeState] = {n: NodeState(n, up=False) for n in names}
        self.started: float | None = None
        self.stopped: float | None = None

    # -- one round -------------------------------------------------------------------------
    def _scrape(self, target: ScrapeTarget) -> Sample:
        text = target.metrics()
        return parse(text, self.clock())

    def scrape(self) -> None:
        """Scrape every node concurrently; wait at most `scrape_timeout_s` for the answers."""
        submitted: dict[str, Future[Sample]] = {}
        stuck: list[str] = []
        for target in self.targets:
            previous = self._inflight.get(target.name)
            if previous is not None and not previous.done():
                stuck.append(target.name)  # its last scrape still hangs: do not pile up more
                continue
            submitted[target.name] = self._pool.submit(self._scrape, target)
        done, _ = wait(submitted.values(), timeout=self.scrape_timeout_s)
        now = self.clock()
        for name in stuck:
            self.fleet.nodes[name].failed("the previous scrape has not answered yet", now)
        for name, future in submitted.items():
            node = self.fleet.nodes[name]
            if future not in done:
                self._inflight[name] = future
                node.failed(f"no answer within {self.scrape_timeout_s:g} s", now)
                continue
            self._inflight.pop(name, None)
            try:
                node.add(future.result())
            except Exception as e:  # a LabError, or text that is not the exposition format
                node.failed(str(e) or type(e).__name__, now)
        self.fleet.now = now
        # Made whole, then swapped in: another thread reads `states` while the loop runs.
        self._states = {name: node.state() for name, node in self.fleet.nodes.items()}

    def evaluate(self) -> list[Alert]:
        """Run every rule on the fleet as scraped; the alerts that fire now (de-duplicated)."""
        now = self.fleet.now
        raised: list[Alert] = []
        for rule in self.rules:
            try:
                findings = {f.node: f for f in rule.evaluate(self.fleet)}
            except Exception as e:  # a broken rule must not blind the others
                self.errors.append(f"rule {rule.name}: {type(e).__name__}: {e}")
                continue
            for key in [k for k in self._pending if k[0] == rule.name and k[1] not in findings]:
                del self._pending[key]  # cleared: the next occurrence is a new alert
                self._firing.discard(key)
            for node, finding in findings.items():
                key = (rule.name, node)
                first = self._pending.setdefault(key, now)
                if key in self._firing or now - first < rule.for_s - _EPSILON_S:
                    continue
                self._firing.add(key)
                raised.append(
                    Alert(
                        t=first,
                        raised=now,
                        rule=rule.name,
                        node=node,
                        severity=rule.severity,
                        owner=rule.owner,
                        runbook=rule.runbook,
                        action=rule.action,
                        summary=finding.summary,
                        value=finding.value,
                    )
                )
        return raised

    def poll(self) -> list[Alert]:
        """One round: scrape, evaluate, record and act. Returns the alerts raised in it."""
        self.scrape()
        raised = self.evaluate()
        self.rounds += 1
        if raised:
            with self._lock:
                self._alerts.extend(raised)
            for action in self.actions:
                try:
                    action.handle(raised)
                except Exception as e:  # one failing action must not stop the next
                    self.errors.append(f"action {type(action).__name__}: {e}")
        return raised

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> Monitor:
        if self._thread is not None:
            raise RuntimeError("monitor already started")
        self.started = self.clock()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_round = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as e:
                self.errors.append(f"round {self.rounds}: {type(e).__name__}: {e}")
            next_round += self.interval_s
            delay = next_round - time.monotonic()
            if delay < 0:  # a slow round: start the next now, do not try to catch up
                next_round, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def stop(self, timeout: float = 5.0) -> MonitorResult:
        """Stop the loop (if running), release the threads; the result of the whole run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.stopped is None:
            self.stopped = self.clock()
            self._pool.shutdown(wait=False, cancel_futures=True)
            for action in self.actions:
                action.close()
        return self.result()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it saw -----------------------------------------------------------------------
    @property
    def alerts(self) -> list[Alert]:
        """Every alert raised so far, in order (a copy: safe while the loop runs)."""
        with self._lock:
            return list(self._alerts)

    @property
    def states(self) -> dict[str, NodeState]:
        """Each node as the last round saw it (safe to read while the loop runs)."""
        return self._states

    @property
    def kills(self) -> list[KillRecord]:
        return [k for a in self.actions for k in getattr(a, "kills", [])]

    def result(self) -> MonitorResult:
        return MonitorResult.of(self, self.interval_s)
