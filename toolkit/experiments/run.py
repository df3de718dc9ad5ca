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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import KnightError
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.monitor import Monitor, MonitorResult, watch

from .activities import ACTIVITY_ACTS, StepOutcome
from .journal import Journal, Outcome, ProbeResult, exit_code
from .model import Activity, Expectations, Experiment, Probe
from .state import RunState, undo_fault

__all__ = ["RunResult", "run_experiment"]

#: How often the watcher samples the venue (series and abort conditions).
SAMPLE_S = 0.5
#: A node with this many excess shares or more is a runaway node.
RUNAWAY_SHARES = 1


@dataclass
class RunResult:
    journal: dict[str, Any]
    path: Path
    exit_code: int


class _Watcher:
    """Samples the venue every SAMPLE_S: abort conditions (excess shares, child orders, time)."""

    def __init__(self, run: RunState) -> None:
        self.run = run
        self.tripped: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        venue = self.run.lab.venue_admin()
        while not self._done.wait(SAMPLE_S):
            try:
                stats = venue.get("/stats")
            except KnightError:
                continue
            seen = {
                "excess_shares": stats.get("excess_shares", 0),
                "child_orders": stats.get("child_orders", 0),
                "elapsed_s": self.run.journal.elapsed(),
            }
            for condition in self.run.experiment.abort:
                if self.tripped is None and condition.tripped(seen):
                    self.tripped = f"{condition.name} {condition.limit:g}"
                    self.run.event(
                        "abort", None, f"{self.tripped}: {seen[condition.observes]:g} observed"
                    )
                    self.run.stop.set()


def run_experiment(
    lab: Lab,
    experiment: Experiment,
    mode: str,
    guards: GuardSet | None = None,
    journal_path: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> RunResult:
    """Run `experiment` in `mode` (unsafe: no guard, guarded: all) or with exactly `guards`."""
    guards = guards if guards is not None else GuardSet.for_mode(mode)
    run, monitor, venue_start = _start(lab, experiment, mode, guards, say or (lambda _m: None))
    watcher = _Watcher(run)
    watcher.start()
    status = "completed"
    try:
        before = _probe(run, experiment.steady_state, "before")
        if not run.journal.steady("before", before):
            raise KnightError(f"steady state does not hold before the run: {_failed(before)}")
        status = _method(run)
        if watcher.tripped:
            status = "aborted"
    except KeyboardInterrupt:
        status = "interrupted"
        run.event("interrupted", None, "Ctrl-C: the rollbacks run now")
    except KnightError as exc:
        status = "failed"
        run.event("error", None, str(exc))
    finally:
        _rollbacks(run)
        run.stop.set()  # what still runs in the background ends now: timed faults are undone
        run.collect()
        for fault in run.faults:
            undo_fault(run, fault)
        watcher.stop()
        seen = monitor.stop()
    return _finish(run, mode, status, seen, venue_start, journal_path)


def _start(
    lab: Lab,
    experiment: Experiment,
    mode: str,
    guards: GuardSet,
    say: Callable[[str], None],
) -> tuple[RunState, Monitor, float]:
    """A new run's journal and shared state, the lab reset to its baseline with `guards` and the
    monitor watching; also the venue's start time, which its series count from."""
    journal = Journal(
        experiment.id, mode, guards.to_json(), experiment.parameters, interval_s=SAMPLE_S
    )
    run = RunState(lab, experiment, guards, journal, say)
    run.event("start", None, f"{experiment.title} ({mode}, guards {guards.label()})")
    lab.reset(guards)
    lab.wait_healthy(timeout=30)
    run.event("reset", None, f"every node on {lab.catalog.baseline}, guards {guards.label()}")
    venue_start = lab.venue_admin().get("/stats").get("started_at", time.time())
    monitor_dir = lab.settings.reports / "monitor" / journal.start.strftime("%Y%m%dT%H%M%S")
    monitor = watch(lab, acting=guards.monitor, out_dir=monitor_dir)
    run.event(
        "monitor",
        None,
        "alerts kill the fleet" if guards.monitor else "alerts go to a mailbox nobody reads",
    )
    return run, monitor, venue_start


def _finish(
    run: RunState,
    mode: str,
    status: str,
    seen: MonitorResult,
    venue_start: float,
    journal_path: Path | None,
) -> RunResult:
    """After the rollbacks: the last probes, the series and the outcome, the expectations
    checked, and the journal written."""
    lab, experiment, journal = run.lab, run.experiment, run.journal
    _record_monitor(run, seen)
    after = _probe(run, experiment.steady_state, "after")
    held = journal.steady("after", after)
    _series(run, venue_start)
    journal.outcome = _outcome(run, seen)
    deviated = not held or status == "aborted"
    if status == "completed" and deviated:
        status = "deviated"
    # A file's expectations are for its modes as such; a run with a chosen guard set (the
    # matrix, --guards) is measured, not judged.
    own = run.guards == GuardSet.for_mode(mode)
    expectations = experiment.expectations(mode) if own else Expectations(mode)
    draft = journal.to_json(secrets=[lab.token])
    journal.finish(
        status, deviated, expectations.check(draft | {"deviated": deviated, "status": status})
    )
    path = journal.write(journal_path, reports_dir=lab.settings.reports, secrets=[lab.token])
    doc = journal.to_json(secrets=[lab.token])
    return RunResult(doc, path, exit_code(status))


def _method(run: RunState) -> str:
    for step in run.experiment.method:
        if run.stop.is_set():
            return "aborted"
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


def _rollbacks(run: RunState) -> None:
    """Every rollback runs, whatever happened before, and goes on after one fails."""
    run.stop.clear()
    run.phase = "rollbacks"
    for step in run.experiment.rollbacks:
        try:
            outcome = ACTIVITY_ACTS[step.name](run, step.args)
        except KeyboardInterrupt:
            outcome = StepOutcome("failed", "interrupted; going on with the rollbacks")
        except KnightError as exc:
            outcome = StepOutcome("failed", str(exc))
        run.event(f"rollback_{step.name}", None, f"{step.label}: {outcome.status} {outcome.detail}")


# -- observations ---------------------------------------------------------------------------------
def _probe(run: RunState, probes: tuple[Probe, ...], phase: str) -> list[ProbeResult]:
    status = run.lab.status()
    stats = run.lab.venue_admin().get("/stats")
    values = {
        "fleet_uniform": {n.name: n.release for n in status.nodes},
        "nodes_healthy": sum(not n.healthy for n in status.nodes),
        "excess_shares": stats.get("excess_shares", 0),
        "orders_lost": sum(r.unanswered for r in run.loads) + len(run.load_errors),
    }
    results = []
    for probe in probes:
        value = values[probe.name]
        results.append(ProbeResult(probe.name, probe.tolerance, value, probe.holds(value)))
        run.say(f"probe {phase} {probe.name}: {value} ({'ok' if results[-1].ok else 'NOT OK'})")
    return results


def _failed(results: list[ProbeResult]) -> str:
    return ", ".join(f"{r.probe}={r.value}" for r in results if not r.ok)


def _record_monitor(run: RunState, seen: MonitorResult) -> None:
    start = run.journal.start.timestamp()
    for entry in seen.timeline():
        d = entry["detail"]
        if entry["kind"] == "alert":
            detail = (
                f"{d['rule']} {d['severity']} owner={d['owner']} action={d['action']} "
                f"runbook={d['runbook']}: {d['summary']}"
            )
        else:
            detail = f"kill switch on every node (trigger {', '.join(d['trigger'])}, ok={d['ok']})"
        run.journal.event(entry["kind"], entry["node"], detail, t=entry["t"] - start)


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


def _outcome(run: RunState, seen: MonitorResult) -> Outcome:
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
    critical = seen.first_alert("kill")  # the critical rules, and only they, kill
    first_alert = critical.raised if critical else None
    kills = [k.done - start for k in seen.kills] + run.kill_times
    detected = journal.since_fault(first_alert - start) if first_alert else None
    killed = journal.since_fault(min(kills)) if kills else None
    return Outcome(
        parent_orders=sum(r.sent for r in run.loads),
        child_orders=int(stats.get("child_orders", 0)),
        executions=int(stats.get("executions", 0)),
        shares_traded=int(stats.get("shares", 0)),
        excess_shares=int(stats.get("excess_shares", 0)),
        runaway_nodes=sorted(
            n for n, v in nodes.items() if v.get("excess_shares", 0) >= RUNAWAY_SHARES
        ),
        detected_at_s=detected if detected is None or detected >= 0 else 0.0,
        killed_at_s=killed if killed is None or killed >= 0 else 0.0,
        loss_usd=float(stats.get("loss_usd", 0.0)),
        fleet_end={n.name: n.release for n in lab.status().nodes},
    )
