"""Run one experiment on the lab and write its journal.

The run reads like the experiment file: reset the lab to its baseline with the run's guards,
watch (monitor, venue series, abort conditions), check the steady state, run the method step by
step, always run the rollbacks, check the steady state again, then measure the outcome from the
venue's own counts and compare it with the file's expectations. Everything the run does goes
into the journal; the CLI only prints what the journal says.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.chaos.kinds import halt_all
from toolkit.deploy.fleet_lab import FleetLab
from toolkit.errors import ConfigError, KnightError
from toolkit.guards.sets import GuardSet
from toolkit.interrupts import deferred
from toolkit.lab.lab import Lab
from toolkit.lab.notes import begin_run
from toolkit.monitor import MONITORS, AlertReceiver, Monitor, MonitorResult, watch, watch_prometheus

from .activities import ACTIVITY_ACTS, StepOutcome
from .activities.load import close_loads
from .context import bound
from .journal import Journal, Outcome, ProbeResult, exit_code
from .measure import venue_outcome
from .model import Activity, Expectations, Experiment, Probe
from .probes import PROBE_FUNCTIONS
from .reach import check_reach
from .sampler import Sampler
from .state import RunState, undo_fault

__all__ = ["RunResult", "run_experiment"]

#: How often the watcher samples the venue (series and abort conditions).
SAMPLE_S = 0.5
#: A venue whose admin API has not answered for this long aborts the run.
VENUE_SILENT_S = 3.0


@dataclass
class RunResult:
    journal: dict[str, Any]
    path: Path
    exit_code: int


class _Watcher:
    """Samples the venue every SAMPLE_S: abort conditions (excess shares, child orders, time),
    and hands the venue's counts (None: no answer) to `on_sample`. Time counts from the
    watcher's start, once the lab is reset: how long a busy machine takes to reset the lab is no
    part of the experiment's duration."""

    def __init__(
        self,
        run: RunState,
        clock: Callable[[], float] = time.monotonic,
        on_sample: Callable[[dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.run = run
        self.tripped: str | None = None
        self._on_sample = on_sample or (lambda _stats: None)
        self._clock = clock
        self._began = clock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        venue = self.run.lab.venue_admin()
        answered = time.monotonic()
        while not self._done.wait(SAMPLE_S):
            try:
                stats = venue.get("/stats")
            except KnightError as exc:
                self._on_sample(None)
                # Without the venue's counts no abort condition can be checked: a run that
                # cannot see its damage stops instead of going on blind.
                if self.tripped is None and time.monotonic() - answered > VENUE_SILENT_S:
                    self._trip(f"venue not answering for {VENUE_SILENT_S:g}s", str(exc))
                continue
            answered = time.monotonic()
            self._on_sample(stats)
            seen = {
                "excess_shares": stats.get("excess_shares", 0),
                "child_orders": stats.get("child_orders", 0),
                "elapsed_s": self._clock() - self._began,
            }
            for condition in self.run.experiment.abort:
                if self.tripped is None and condition.tripped(seen):
                    observed = f"{seen[condition.observes]:g} observed"
                    self._trip(f"{condition.name} {condition.limit:g}", observed)

    def _trip(self, why: str, detail: str) -> None:
        self.tripped = why
        self.run.event("abort", None, f"{why}: {detail}")
        self.run.stop.set()


@dataclass
class _Observers:
    """What watches a run (the monitor's paths, the abort watcher) and when the venue's run
    began; each is there only once the run got as far as starting it."""

    #: The monitor's paths that watch the run (MONITORS): the built-in scraper, Prometheus.
    monitors: tuple[str, ...] = ("builtin",)
    monitor: Monitor | None = None
    receiver: AlertReceiver | None = None
    watcher: _Watcher | None = None
    #: Records the nodes and the monitor's alerts and kills as the run goes.
    sampler: Sampler | None = None
    venue_start: float | None = None
    #: What each path saw, once it stopped: path -> its result.
    results: dict[str, MonitorResult] = field(default_factory=dict)

    @property
    def tripped(self) -> str | None:
        return self.watcher.tripped if self.watcher else None

    @property
    def seen(self) -> MonitorResult | None:
        """What every path saw, as one result (alerts and kills of both, in time order)."""
        if not self.results:
            return None
        parts = list(self.results.values())
        return MonitorResult(
            interval_s=min(p.interval_s for p in parts),
            started=min((p.started for p in parts if p.started), default=None),
            stopped=max((p.stopped for p in parts if p.stopped), default=None),
            rounds=sum(p.rounds for p in parts),
            alerts=sorted((a for p in parts for a in p.alerts), key=lambda a: a.raised),
            kills=sorted((k for p in parts for k in p.kills), key=lambda k: k.t),
            errors=[e for p in parts for e in p.errors],
        )

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.monitor is not None:
            self.results["builtin"] = self.monitor.stop()
        if self.receiver is not None:
            self.results["prometheus"] = self.receiver.stop()


def run_experiment(
    lab: Lab,
    experiment: Experiment,
    mode: str,
    guards: GuardSet | None = None,
    journal_path: Path | None = None,
    say: Callable[[str], None] | None = None,
    observe: Callable[[Journal], None] | None = None,
    monitors: tuple[str, ...] = ("builtin",),
) -> RunResult:
    """Run `experiment` in `mode` (unsafe: no guard, guarded: all) or with exactly `guards`;
    the monitor watches through `monitors` (MONITORS: its own scraper, the lab's Prometheus and
    Alertmanager, or both; with the monitor guard on, each of them throws the kill switch).
    `say` hears each event as a line; `observe` gets the run's journal as soon as it exists,
    to read while the run fills it (a live view).

    Whatever happens from the first step on (a failed step, an abort, a Docker error, Ctrl-C
    at any moment, a second Ctrl-C during the clean-up), the market closes, every rollback
    runs, every fault is undone, the watchers stop and the journal is written."""
    guards = guards if guards is not None else GuardSet.for_mode(mode)
    unknown = [m for m in monitors if m not in MONITORS]
    if unknown or not monitors:
        raise ConfigError(f"monitor {', '.join(unknown) or 'none'}: use {', '.join(MONITORS)}")
    if lab.through_inventory:
        check_reach(experiment)  # a step the fleet cannot take: exit 2, nothing ran
    # A second deploy or run on this lab meanwhile is refused before it changes anything.
    with lab.exclusive(f"experiment {experiment.id} ({mode})"):
        return _run(lab, experiment, mode, guards, journal_path, say, observe, monitors)


def _run(
    lab: Lab,
    experiment: Experiment,
    mode: str,
    guards: GuardSet,
    journal_path: Path | None,
    say: Callable[[str], None] | None,
    observe: Callable[[Journal], None] | None,
    monitors: tuple[str, ...],
) -> RunResult:
    journal = Journal(
        experiment.id, mode, guards.to_json(), experiment.parameters, interval_s=SAMPLE_S
    )
    if observe is not None:
        observe(journal)
    run = RunState(lab, experiment, guards, journal, say or (lambda _m: None))
    # The activities are called with the run's configuration; this gives them its lab, its
    # stop event and its journal.
    with bound(run.context()):
        return _bound_run(run, mode, journal_path, _Observers(monitors=tuple(monitors)))


def _bound_run(
    run: RunState, mode: str, journal_path: Path | None, observers: _Observers
) -> RunResult:
    experiment, journal = run.experiment, run.journal
    status = "completed"
    try:
        _start(run, observers)
        before = _probe(run, experiment.steady_state, "before")
        if not journal.steady("before", before):
            raise KnightError(f"steady state does not hold before the run: {_failed(before)}")
        status = _method(run)
        if observers.tripped:
            status = "aborted"
    except KeyboardInterrupt:
        status = "interrupted"
        run.event("interrupted", None, "Ctrl-C: the rollbacks run now")
    except KnightError as exc:
        status = "failed"
        run.event("error", None, str(exc))
    except Exception as exc:  # a Docker error: the rollbacks and the journal still happen
        status = "failed"
        run.event("error", None, f"{type(exc).__name__}: {exc}")
    finally:
        if _wind_down(run, observers):
            status = "interrupted"
    return _finish(run, mode, status, observers, journal_path)


def _start(run: RunState, observers: _Observers) -> None:
    """The lab reset to its baseline with the run's guards, the monitor and the abort watcher
    started; the venue's start time noted (its series count from it)."""
    lab, guards = run.lab, run.guards
    fleet = f", fleet {lab.inventory_path}" if isinstance(lab, FleetLab) else ""
    run.event(
        "start",
        None,
        f"{run.experiment.title} ({run.journal.mode}, guards {guards.label()}{fleet})",
    )
    # A fault or a load left behind by a run that crashed would break this one: end them first.
    halt_all(lab)
    begin_run(lab)
    lab.reset(guards)
    lab.wait_healthy(timeout=30)
    run.event("reset", None, f"every node on {lab.catalog.baseline}, guards {guards.label()}")
    observers.venue_start = lab.venue_admin().get("/stats").get("started_at", time.time())
    monitor_dir = lab.settings.reports / "monitor" / run.journal.start.strftime("%Y%m%dT%H%M%S")
    acts = "alerts kill the fleet" if guards.monitor else "alerts go to a mailbox nobody reads"
    if "prometheus" in observers.monitors:
        # First: it waits for the last run's alerts to resolve before it reads any.
        observers.receiver = watch_prometheus(lab, acting=guards.monitor, out_dir=monitor_dir)
        run.event("monitor", None, f"{acts} (Prometheus, through Alertmanager's kill webhook)")
    if "builtin" in observers.monitors:
        observers.monitor = watch(lab, acting=guards.monitor, out_dir=monitor_dir)
        run.event("monitor", None, acts)
    observers.sampler = Sampler(run, observers.monitor)
    observers.watcher = _Watcher(run, on_sample=observers.sampler)
    observers.watcher.start()


def _wind_down(run: RunState, observers: _Observers) -> bool:
    """Close the market, run every rollback, end the background work, undo every fault, stop
    the watchers: each part runs whatever happened in the one before. True when a Ctrl-C came
    meanwhile (it is recorded, and the rest goes on)."""
    interrupted = False

    def undo_faults() -> bool:
        ctrl_c = False
        for fault in run.faults:
            try:
                undo_fault(run, fault)
            except KeyboardInterrupt:  # the next fault is undone all the same
                ctrl_c = True
                run.event("interrupted", fault.node, f"Ctrl-C while undoing {fault.NAME}")
        return ctrl_c

    def end_background() -> None:
        run.stop.set()  # what still runs in the background ends now: timed faults are undone
        run.collect()

    parts: list[tuple[str, Callable[[], bool | None]]] = [
        ("the close", lambda: _close_at_end(run)),
        ("the rollbacks", lambda: _rollbacks(run)),
        ("the background work", end_background),
        ("the fault undo", undo_faults),
        ("the watchers", observers.stop),
    ]
    doing = ["the clean-up"]
    ctrl_c: list[str] = []

    def noted() -> None:  # a signal handler: note it only, it is recorded after the part
        ctrl_c.append(doing[0])

    # The clean-up is what makes the lab safe again: a Ctrl-C now is noted, not obeyed.
    with deferred(noted):
        for what, part in parts:
            doing[0] = what
            try:
                if part():  # a part that goes on after a Ctrl-C says it came
                    interrupted = True
            except KeyboardInterrupt:
                interrupted = True
                run.event("interrupted", None, f"Ctrl-C during {what}: going on with the clean-up")
            except Exception as exc:
                run.event("error", None, f"{what}: {type(exc).__name__}: {exc}")
            if what in ctrl_c:
                run.event("interrupted", None, f"Ctrl-C during {what}: it went on to its end")
    return interrupted or bool(ctrl_c)


def close_market(run: RunState) -> bool:
    """End every load that runs until the market closes, and wait for their accounts; False
    when the market was not open."""
    return close_loads(run.context()) is not None


def _close_at_end(run: RunState) -> None:
    if close_market(run):
        run.event("close", None, "the market closes: the method is over")


def _finish(
    run: RunState,
    mode: str,
    status: str,
    observers: _Observers,
    journal_path: Path | None,
) -> RunResult:
    """After the clean-up: the last probes, the series and the outcome (as far as the lab still
    answers), the expectations checked, and the journal written."""
    lab, experiment, journal = run.lab, run.experiment, run.journal
    held = True
    try:
        if observers.sampler is not None:
            for path, seen in observers.results.items():
                observers.sampler.record(seen, via="" if path == "builtin" else path)
        after = _probe(run, experiment.steady_state, "after")
        held = journal.steady("after", after)
        _series(run, observers.venue_start or journal.start.timestamp())
        journal.outcome = _outcome(run, observers.seen)
        _path_times(run, observers.results)
    except KeyboardInterrupt:
        status = "interrupted"
        run.event("interrupted", None, "Ctrl-C while measuring the outcome: the journal is written")
    except Exception as exc:
        if status == "completed":
            status = "failed"
        run.event("error", None, f"measuring the outcome: {type(exc).__name__}: {exc}")
    deviated = not held or status == "aborted"
    if status == "completed" and deviated:
        status = "deviated"
    # A file's expectations are for its modes as such; a run with a chosen guard set (the
    # matrix, --guards) is measured, not judged.
    own = run.guards == GuardSet.for_mode(mode)
    expectations = experiment.expectations(mode) if own else Expectations(mode)
    secrets = lab.secrets
    draft = journal.to_json(secrets=secrets)
    journal.finish(
        status, deviated, expectations.check(draft | {"deviated": deviated, "status": status})
    )
    path = journal.write(journal_path, reports_dir=lab.settings.reports, secrets=secrets)
    return RunResult(journal.to_json(secrets=secrets), path, exit_code(status))


def _method(run: RunState) -> str:
    steps = run.experiment.method
    for number, step in enumerate(steps, 1):
        if run.stop.is_set():
            return "aborted"
        run.begins(f"{number}/{len(steps)} {step.label}", step.args.get("node"))
        outcome = _step(run, step)
        if outcome.status == "refused":
            run.event(
                "guard",
                None,
                f"the {outcome.guard} guard refused: {step.label} ({outcome.detail})",
            )
            if step.on_refused == "stop":
                run.event("stop", None, f"method stopped: {step.label} was refused")
                return "completed"
        elif outcome.status == "failed" and step.on_refused == "stop":
            run.event("stop", None, f"method stopped: {step.label} failed")
            return "completed"
    return "aborted" if run.stop.is_set() else "completed"


def _step(run: RunState, step: Activity) -> StepOutcome:
    act = ACTIVITY_ACTS[step.name]
    try:
        outcome = act(run, step.args)
    except KnightError as exc:
        outcome = StepOutcome("failed", str(exc))
    except Exception as exc:  # a Docker error must not stop the journal from being written
        outcome = StepOutcome("failed", f"{type(exc).__name__}: {exc}")
    kind = step.name if outcome.status == "done" else f"{step.name}_{outcome.status}"
    run.event(kind, step.args.get("node"), f"{step.label}: {outcome.detail}".rstrip(": "))
    return outcome


def _rollbacks(run: RunState) -> bool:
    """Every rollback runs, whatever happened before, and goes on after one fails or a Ctrl-C;
    True when a Ctrl-C came meanwhile."""
    run.stop.clear()
    run.phase = "rollbacks"
    interrupted = False
    steps = run.experiment.rollbacks
    for number, step in enumerate(steps, 1):
        run.begins(f"rollback {number}/{len(steps)} {step.label}", step.args.get("node"))
        try:
            outcome = ACTIVITY_ACTS[step.name](run, step.args)
        except KeyboardInterrupt:
            interrupted = True
            outcome = StepOutcome("failed", "interrupted; going on with the rollbacks")
        except KnightError as exc:
            outcome = StepOutcome("failed", str(exc))
        except Exception as exc:  # a Docker error must not skip the rollbacks after this one
            outcome = StepOutcome("failed", f"{type(exc).__name__}: {exc}")
        run.event(f"rollback_{step.name}", None, f"{step.label}: {outcome.status} {outcome.detail}")
    return interrupted


# -- observations ---------------------------------------------------------------------------------
def _probe(run: RunState, probes: tuple[Probe, ...], phase: str) -> list[ProbeResult]:
    values = {p.name: PROBE_FUNCTIONS[p.name](configuration=run.configuration) for p in probes}
    results = []
    for probe in probes:
        value = values[probe.name]
        results.append(ProbeResult(probe.name, probe.tolerance, value, probe.holds(value)))
        run.say(f"probe {phase} {probe.name}: {value} ({'ok' if results[-1].ok else 'NOT OK'})")
    return results


def _failed(results: list[ProbeResult]) -> str:
    return ", ".join(f"{r.probe}={r.value}" for r in results if not r.ok)


def _series(run: RunState, venue_start: float) -> None:
    """Child orders per second per node, from the venue's own buckets."""
    body = run.lab.venue_admin().get("/series")
    bucket = float(body.get("bucket_s", 0.25))
    offset = float(body.get("started_at", venue_start)) - run.journal.start.timestamp()
    per_node = {n: dict(map(tuple, rows)) for n, rows in body.get("nodes", {}).items()}
    nodes = run.lab.settings.node_names
    span = run.journal.elapsed()
    step = run.journal.series.interval_s
    per_step = max(1, round(step / bucket))
    t = 0.0
    while t <= span:
        first = int((t - offset) / bucket)
        rates = {
            n: sum(per_node.get(n, {}).get(b, 0) for b in range(first, first + per_step))
            / (per_step * bucket)
            for n in nodes
        }
        run.journal.sample(rates, t=t)
        t += step


def _path_times(run: RunState, results: dict[str, MonitorResult]) -> None:
    """With both paths watching: when each raised its first critical alert and had the kill
    switch on every node, in seconds from the fault (the outcome has the earlier of each)."""
    if len(results) < 2:
        return
    journal = run.journal
    start = journal.start.timestamp()

    def since(t: float | None) -> str:
        s = journal.since_fault(t - start) if t is not None else None
        return "never" if s is None else f"{s:.3f}s"

    for path, seen in results.items():
        alert = seen.first_alert("kill")
        kill = min((k.done for k in seen.kills), default=None)
        journal.event(
            "monitor",
            None,
            f"{path}: first critical alert at {since(alert.raised if alert else None)}, kill "
            f"switch on every node at {since(kill)}, from the fault",
        )


def _outcome(run: RunState, seen: MonitorResult | None) -> Outcome:
    lab, journal = run.lab, run.journal
    stats = lab.venue_admin().get("/stats")
    nodes = stats.get("nodes", {})
    start = journal.start.timestamp()
    # The fault is the first runaway child order (the venue's first execution beyond its
    # parent), else what the method marked (a flag turned on, a fault injected).
    firsts = [v["first_excess_at"] for v in nodes.values() if v.get("first_excess_at")]
    if firsts:
        journal.mark_fault(min(firsts) - start)
        journal.event(
            "runaway", None, "first child order executed beyond its parent", t=min(firsts) - start
        )
    critical = seen.first_alert("kill") if seen else None  # the critical rules, and only they
    first_alert = critical.raised if critical else None
    kills = [k.done - start for k in (seen.kills if seen else [])] + run.kill_times
    detected = journal.since_fault(first_alert - start) if first_alert else None
    killed = journal.since_fault(min(kills)) if kills else None
    return venue_outcome(
        lab,
        stats,
        sum(r.sent for r in run.loads),
        detected_at_s=detected if detected is None or detected >= 0 else 0.0,
        killed_at_s=killed if killed is None or killed >= 0 else 0.0,
    )
