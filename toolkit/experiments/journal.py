"""The journal of one experiment run: plain data, recorded as the run goes, written as JSON.

The JSON is a contract (docs/journal.md): `experiment`, `mode`, `guards`, `status`,
`deviated`, `start`, `end`, `duration_s`, `timeline`, `series`, `outcome`, and after them
`steady_state` (probe results before and after), `parameters`, `expectations` (each with whether
it was met) and `expectations_met`. A journal never contains a secret: `scrub` runs on every write.

`status` says how the run ended:

- `completed`   the method ran and the steady state held before and after;
- `deviated`    the method ran (or a refused step stopped it) and the steady state did not hold;
- `aborted`     an abort condition stopped the method; the rollbacks ran;
- `failed`      the run could not do what it set out to (lab error, steady state broken before);
- `interrupted` the operator stopped it (SIGINT); the rollbacks ran.

`deviated` is whether the steady state failed after the method, whatever the status.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import KnightError
from toolkit.guards.sets import GUARDS, GuardSet
from toolkit.settings import load_settings, node_key

__all__ = [
    "EXIT_CODES",
    "GUARDS",
    "JOURNAL_KEYS",
    "OUTCOME_KEYS",
    "STATUSES",
    "Event",
    "Journal",
    "JournalError",
    "NodeSample",
    "Outcome",
    "ProbeResult",
    "Series",
    "exit_code",
    "guard_label",
    "guards_for",
    "read_journal",
    "scrub",
]

STATUSES = ("completed", "deviated", "aborted", "failed", "interrupted")
#: Exit code of `knight experiment run` for each status: 0 only when the hypothesis held; 1 when
#: it deviated, was aborted on the way (an abort condition is a deviation) or the run failed;
#: 130 when interrupted (Ctrl-C), as a shell expects. Bad input never gets this far: it is 2.
EXIT_CODES = {"completed": 0, "deviated": 1, "aborted": 1, "failed": 1, "interrupted": 130}

JOURNAL_KEYS = (
    "experiment",
    "mode",
    "guards",
    "status",
    "deviated",
    "start",
    "end",
    "duration_s",
    "timeline",
    "series",
    "outcome",
    "steady_state",
    "parameters",
    "expectations",
    "expectations_met",
)
OUTCOME_KEYS = (
    "parent_orders",
    "child_orders",
    "executions",
    "shares_traded",
    "excess_shares",
    "runaway_nodes",
    "detected_at_s",
    "killed_at_s",
    "loss_usd",
    "fleet_end",
)

_SECRET_KEY = re.compile(
    r"token|authori[sz]ation|passw(or)?d|secret|api[-_]?key|cookie|credential", re.IGNORECASE
)
REDACTED = "[redacted]"


class JournalError(KnightError):
    """A journal file cannot be read or is not a journal."""


# -- plain data ---------------------------------------------------------------------------------
@dataclass
class Event:
    """One line of the timeline: `t` seconds from the start, what happened, on which node."""

    t: float
    kind: str  # deploy, rollback, flag, alert, open, load, fault, kill, detect, day, probe, ...
    node: str | None
    detail: str


@dataclass
class NodeSample:
    """One node as the run saw it at one moment: what the node's own metrics said (None: it did
    not answer) and its excess shares at the venue (None: the venue did not answer)."""

    release: str | None = None
    trading: bool | None = None
    #: flag -> {"on", "meaning" (declared), "code_meaning" (what the node's code runs)}
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_orders_per_s: float | None = None
    child_orders_per_s: float | None = None
    excess_shares: int | None = None


@dataclass
class Series:
    """Child orders per second per node over the run (from the venue's buckets, None: the node
    did not answer), and the nodes as the run sampled them while it ran (`samples`)."""

    interval_s: float
    t: list[float] = field(default_factory=list)
    child_orders_per_s: dict[str, list[float | None]] = field(default_factory=dict)
    samples: list[tuple[float, dict[str, NodeSample]]] = field(default_factory=list)


@dataclass
class Outcome:
    """What the run did to the market. Times are seconds from the fault; None when never."""

    parent_orders: int = 0
    child_orders: int = 0
    executions: int = 0
    shares_traded: int = 0
    excess_shares: int = 0
    runaway_nodes: list[str] = field(default_factory=list)
    detected_at_s: float | None = None
    killed_at_s: float | None = None
    loss_usd: float = 0.0
    fleet_end: dict[str, str | None] = field(default_factory=dict)


@dataclass
class ProbeResult:
    """One steady-state probe, as observed."""

    probe: str
    tolerance: Any
    value: Any
    ok: bool


# -- guards ---------------------------------------------------------------------------------------
def guards_for(mode: str, names: Iterable[str] | None = None) -> dict[str, bool]:
    """The guard set of a run as a journal records it: `unsafe` none, `guarded` all; `names`
    (from `--guards a,b`) names exactly the set instead. An unknown guard name is a ConfigError."""
    if names is not None:
        return GuardSet.of({n.strip() for n in names if n.strip()}).to_json()
    return GuardSet.for_mode(mode).to_json()


def guard_label(guards: Mapping[str, bool]) -> str:
    """`none`, `all`, or the guards that are on joined by `+` (`atomic+risk`)."""
    return GuardSet.of([g for g in GUARDS if guards.get(g)]).label()


def exit_code(status: str) -> int:
    return EXIT_CODES.get(status, 4)


# -- scrub ----------------------------------------------------------------------------------------
def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of `value` without secrets: keys named like token, authorization, password, secret,
    api key, cookie or credential are dropped, as are strings equal to one of `secrets`; a secret
    inside a longer string is replaced by `[redacted]`."""
    known = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def clean(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {
                k: clean(v)
                for k, v in item.items()
                if not (isinstance(k, str) and _SECRET_KEY.search(k)) and not _is_secret(v)
            }
        if isinstance(item, list | tuple):
            return [clean(v) for v in item if not _is_secret(v)]
        if isinstance(item, str):
            for secret in known:
                item = item.replace(secret, REDACTED)
        return item

    def _is_secret(item: Any) -> bool:
        return isinstance(item, str) and item in known

    return clean(value)


# -- the recorder ---------------------------------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """Records one run: the runner calls `event`, `sample`, `steady`, sets `outcome`, then
    `finish` and `write`. Times come from `clock` (monotonic seconds) relative to the start."""

    def __init__(
        self,
        experiment: str,
        mode: str,
        guards: Mapping[str, bool] | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.experiment = experiment
        self.mode = mode
        self.guards = (
            guards_for(mode) if guards is None else {g: bool(guards.get(g)) for g in GUARDS}
        )
        self.parameters = dict(parameters or {})
        self._clock = clock
        self._now = now
        self._t0 = clock()
        self.start = now()
        self.end: datetime | None = None
        self.duration_s: float | None = None
        self.status: str | None = None
        self.deviated = False
        self.timeline: list[Event] = []
        self.series = Series(interval_s)
        self.outcome = Outcome()
        self.steady_state: dict[str, list[ProbeResult]] = {"before": [], "after": []}
        self.expectations: list[dict[str, Any]] = []
        self.fault_t: float | None = None
        self._totals: dict[str, float] = {}
        self._totals_t: float | None = None

    # time ---------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._t0

    def _t(self, t: float | None) -> float:
        return round(self.elapsed() if t is None else t, 3)

    def mark_fault(self, t: float | None = None) -> float:
        """Note when the fault began (flag on over mixed code, ...); outcome times count from it."""
        self.fault_t = self._t(t)
        return self.fault_t

    def since_fault(self, t: float | None) -> float | None:
        """Seconds from the fault to `t` (a time from the start); None when either is unknown."""
        if t is None or self.fault_t is None:
            return None
        return round(t - self.fault_t, 3)

    # recording ----------------------------------------------------------------------------------
    def event(
        self, kind: str, node: str | None = None, detail: str = "", *, t: float | None = None
    ) -> Event:
        ev = Event(self._t(t), kind, node, detail)
        self.timeline.append(ev)
        return ev

    def sample(self, rates: Mapping[str, float | None], *, t: float | None = None) -> None:
        """Record child orders per second per node at `t` (default: now)."""
        self.series.t.append(self._t(t))
        count = len(self.series.t)
        per_node = self.series.child_orders_per_s
        for node in rates:
            per_node.setdefault(node, [None] * (count - 1))
        for node, values in per_node.items():
            rate = rates.get(node)
            values.append(None if rate is None else round(float(rate), 1))

    def sample_nodes(self, nodes: Mapping[str, NodeSample], *, t: float | None = None) -> None:
        """Record every node as the run sees it now (the run's own sampling, as it runs)."""
        self.series.samples.append((self._t(t), dict(nodes)))

    def latest_sample(self) -> tuple[float, dict[str, NodeSample]] | None:
        """The last nodes sample, with its time; None before the first (safe while it runs)."""
        samples = self.series.samples
        return samples[-1] if samples else None

    def sample_totals(self, totals: Mapping[str, float | None], *, t: float | None = None) -> None:
        """Record rates from cumulative child-order counters (a node's metrics). The first call
        only sets the baseline; a counter that went down (the node restarted) counts from zero."""
        now = self._t(t)
        previous, since = self._totals, self._totals_t
        self._totals = {n: v for n, v in totals.items() if v is not None}
        self._totals_t = now
        if since is None or now <= since:
            return
        rates: dict[str, float | None] = {}
        for node, total in totals.items():
            if total is None:
                rates[node] = None
                continue
            before = previous.get(node, 0.0)
            delta = total - before if total >= before else total
            rates[node] = delta / (now - since)
        self.sample(rates, t=now)

    def steady(self, phase: str, results: Iterable[ProbeResult | Mapping[str, Any]]) -> bool:
        """Record the probe results `before` or `after` the method; True when all held."""
        if phase not in self.steady_state:
            raise ValueError(f"phase is before or after, not {phase!r}")
        recorded = [r if isinstance(r, ProbeResult) else ProbeResult(**r) for r in results]
        self.steady_state[phase] = recorded
        return all(r.ok for r in recorded)

    def finish(self, status: str, deviated: bool, expectations: Iterable[Any] = ()) -> None:
        """End the run. `expectations` are results with name, expected, actual, met (objects with
        `to_json()` or dicts)."""
        if status not in STATUSES:
            raise ValueError(f"status is one of {', '.join(STATUSES)}, not {status!r}")
        self.status = status
        self.deviated = bool(deviated)
        self.end = self._now()
        self.duration_s = round(self.elapsed(), 3)
        self.expectations = [
            e.to_json() if hasattr(e, "to_json") else dict(e) for e in expectations
        ]

    @property
    def expectations_met(self) -> bool | None:
        if not self.expectations:
            return None
        return all(bool(e.get("met")) for e in self.expectations)

    # output -------------------------------------------------------------------------------------
    def to_json(self, secrets: Iterable[str] = ()) -> dict[str, Any]:
        """The journal as the documented JSON (an unfinished run reads as failed, ending now)."""
        end = self.end or self._now()
        duration = self.duration_s if self.duration_s is not None else round(self.elapsed(), 3)
        nodes = sorted(self.series.child_orders_per_s, key=node_key)
        outcome = asdict(self.outcome)
        outcome["runaway_nodes"] = sorted(outcome["runaway_nodes"], key=node_key)
        outcome["fleet_end"] = {
            n: outcome["fleet_end"][n] for n in sorted(outcome["fleet_end"], key=node_key)
        }
        doc = {
            "experiment": self.experiment,
            "mode": self.mode,
            "guards": dict(self.guards),
            "status": self.status or "failed",
            "deviated": self.deviated,
            "start": _iso(self.start),
            "end": _iso(end),
            "duration_s": duration,
            "timeline": [asdict(e) for e in sorted(self.timeline, key=lambda e: e.t)],
            "series": {
                "interval_s": self.series.interval_s,
                "t": list(self.series.t),
                "child_orders_per_s": {n: list(self.series.child_orders_per_s[n]) for n in nodes},
                "samples": [_sample_json(t, by_node) for t, by_node in list(self.series.samples)],
            },
            "outcome": outcome,
            "steady_state": {
                phase: [asdict(r) for r in results] for phase, results in self.steady_state.items()
            },
            "parameters": dict(self.parameters),
            "expectations": list(self.expectations),
            "expectations_met": self.expectations_met,
        }
        return scrub(doc, secrets)

    def default_path(self, reports_dir: Path) -> Path:
        """reports/journals/<experiment>-<mode>[-<guards>]-<UTC stamp>.json; the guard part only
        when the guards are not the mode's own (`--guards`)."""
        name = f"{self.experiment}-{self.mode}"
        if self.mode not in ("unsafe", "guarded") or self.guards != guards_for(self.mode):
            name += f"-{guard_label(self.guards)}"
        stamp = self.start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = Path(reports_dir) / "journals"
        path = folder / f"{name}-{stamp}.json"
        serial = 2
        while path.exists():
            path = folder / f"{name}-{stamp}-{serial}.json"
            serial += 1
        return path

    def write(
        self,
        path: Path | None = None,
        *,
        reports_dir: Path | None = None,
        secrets: Iterable[str] = (),
    ) -> Path:
        """Write the scrubbed journal atomically (a reader never sees half a file); returns the
        path. Without `path`, the default name under `reports_dir` (default: reports/)."""
        if path is None:
            if reports_dir is None:
                reports_dir = load_settings().reports
            path = self.default_path(reports_dir)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_json(secrets), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _sample_json(t: float, by_node: Mapping[str, NodeSample]) -> dict[str, Any]:
    nodes = sorted(by_node, key=node_key)
    return {"t": t, "nodes": {n: asdict(by_node[n]) for n in nodes}}


def read_journal(path: Path) -> dict[str, Any]:
    """A journal's JSON, checked to have the contract's keys; JournalError says what is wrong."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JournalError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JournalError(f"{path}: not a journal (expected a JSON object)")
    missing = [k for k in JOURNAL_KEYS[:11] if k not in doc]
    if missing:
        raise JournalError(f"{path}: not a journal (missing {', '.join(missing)})")
    outcome = doc["outcome"]
    if not isinstance(outcome, dict) or any(k not in outcome for k in OUTCOME_KEYS):
        raise JournalError(f"{path}: not a journal (outcome lacks the contract's keys)")
    if not isinstance(doc["series"], dict) or not isinstance(doc["timeline"], list):
        raise JournalError(f"{path}: not a journal (series or timeline malformed)")
    return doc
