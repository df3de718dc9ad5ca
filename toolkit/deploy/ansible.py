"""The one module that runs Ansible: playbooks through ansible-runner, events turned into plain
dicts for progress, and a structured result. Each run keeps its artifacts under
`reports/runs/` (the newest few are kept)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from toolkit.errors import KnightError
from toolkit.interrupts import deferring
from toolkit.settings import Settings

from .inventory import render

__all__ = ["Failure", "PlaybookResult", "TaskEvent", "inventory_path", "run_playbook"]

log = logging.getLogger("knight.ansible")

#: Artifact directories kept under reports/runs/.
KEEP_RUNS = 20


@dataclass(frozen=True)
class TaskEvent:
    """What the progress display needs from one ansible-runner event."""

    kind: str  # task_start, ok, failed, unreachable, skipped, play_end
    task: str
    phase: str
    host: str | None = None
    output: dict[str, Any] | None = None
    message: str | None = None


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    phase: str
    message: str


@dataclass
class PlaybookResult:
    playbook: str
    rc: int
    status: str
    stats: dict[str, dict[str, int]]
    duration_s: float
    run_dir: Path
    failures: list[Failure] = field(default_factory=list)
    #: phase -> host -> the JSON a node printed for that phase's task
    outputs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    phases_started: list[str] = field(default_factory=list)

    @property
    def rescued(self) -> bool:
        return any(s.get("rescued", 0) for s in self.stats.values())

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None


def phase_of(task: str) -> str:
    """Task names start with their phase: `flip: ...` → flip."""
    head, sep, _ = task.partition(":")
    return (head if sep else task).strip().lower()


def _node_json(res: dict[str, Any]) -> dict[str, Any] | None:
    out = res.get("stdout") or ""
    for line in reversed(out.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


def _message(res: dict[str, Any]) -> str:
    doc = _node_json(res)
    if doc and doc.get("error"):
        return str(doc["error"])
    msg = res.get("msg") or res.get("stderr") or res.get("stdout") or "failed"
    return str(msg).strip().splitlines()[-1] if str(msg).strip() else "failed"


_KINDS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def _to_task_event(event: dict[str, Any]) -> TaskEvent | None:
    name = event.get("event")
    data = event.get("event_data") or {}
    task = data.get("task") or ""
    if name == "playbook_on_task_start":
        return TaskEvent("task_start", task, phase_of(task))
    if name in _KINDS:
        res = data.get("res") or {}
        kind = _KINDS[name]
        if kind == "failed" and data.get("ignore_errors"):
            kind = "ok"
        message = _message(res) if kind in ("failed", "unreachable") else None
        return TaskEvent(kind, task, phase_of(task), data.get("host"), _node_json(res), message)
    if name == "playbook_on_stats":
        return TaskEvent("play_end", "", "end")
    return None


def inventory_path(settings: Settings) -> Path:
    """The lab's inventory file, written (or refreshed) under reports/runs/inventory/."""
    path = settings.reports / "runs" / "inventory" / f"{settings.lab}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(settings)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


class _Events:
    """Collects one run's events into its result on a thread of its own, so ansible-runner's
    event handler only hands each event over and returns at once."""

    def __init__(self, result: PlaybookResult, on_event: Callable[[TaskEvent], None] | None):
        self.result = result
        self.on_event = on_event
        self.queue: queue.Queue[TaskEvent | None] = queue.Queue()
        self.thread = threading.Thread(target=self._consume, name="knight-ansible-events")
        self.thread.daemon = True

    def handler(self, event: dict[str, Any]) -> bool:
        converted = _to_task_event(event)
        if converted is not None:
            self.queue.put(converted)
        return True

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _consume(self) -> None:
        result = self.result
        while (ev := self.queue.get()) is not None:
            if ev.kind == "task_start":
                result.phases_started.append(ev.phase)
                log.debug("%s: task %r", result.playbook, ev.task)
            elif ev.kind in ("failed", "unreachable"):
                result.failures.append(Failure(ev.host or "?", ev.task, ev.phase, ev.message or ""))
                log.debug("%s: %s %s: %s", result.playbook, ev.host, ev.kind, ev.message)
            elif ev.kind == "ok" and ev.host and ev.output is not None:
                result.outputs.setdefault(ev.phase, {})[ev.host] = ev.output
            if self.on_event is not None:
                # A display error must not lose the run's result.
                with contextlib.suppress(Exception):
                    self.on_event(ev)


def run_playbook(
    settings: Settings,
    playbook: str,
    extravars: dict[str, Any],
    limit: str | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    inventory: Path | None = None,
    envvars: dict[str, str] | None = None,
) -> PlaybookResult:
    """Run one playbook of `playbooks/` against `inventory` (default: the docker lab's) and wait
    for it; `envvars` are added to Ansible's environment."""
    project = settings.playbooks
    if not (project / playbook).is_file():
        raise KnightError(f"no playbook {playbook} in {project}")
    private, ident, result = _new_run(settings, playbook)
    events = _Events(result, on_event)
    inventory = inventory or inventory_path(settings)
    log.debug(
        "ansible-playbook %s: inventory %s, limit %s, %d forks, vars %s",
        playbook,
        inventory,
        limit or "none",
        settings.forks,
        ", ".join(sorted(extravars)),
    )
    _use_venv_ansible()
    events.thread.start()
    started = time.monotonic()
    interrupted = threading.Event()
    restore = _catch_interrupts(interrupted)
    try:
        runner = ansible_runner.run(
            cancel_callback=interrupted.is_set,
            private_data_dir=str(private),
            project_dir=str(project),
            playbook=playbook,
            inventory=str(inventory),
            # The playbooks size their waits by the number of batches the fleet takes.
            extravars={**extravars, "knight_forks": settings.forks},
            forks=settings.forks,
            limit=limit,
            ident=ident,
            quiet=True,
            event_handler=events.handler,
            rotate_artifacts=KEEP_RUNS,
            envvars={**(envvars or {}), "ANSIBLE_CONFIG": str(project / "ansible.cfg")},
            settings={"suppress_ansible_output": True},
            # Left to itself, ansible-runner writes the first run's environment and variables
            # into env/ and lets them win over every later run's: a deploy would then use
            # another fleet's ssh connections (ControlPath) and an earlier run's variables.
            suppress_env_files=True,
        )
    finally:
        restore()
        events.close()
    if interrupted.is_set():
        # The playbook was cancelled; Ctrl-C goes on to whoever called us.
        log.debug("%s: cancelled by an interrupt", playbook)
        raise KeyboardInterrupt
    return _finish(result, runner, time.monotonic() - started)


def _new_run(settings: Settings, playbook: str) -> tuple[Path, str, PlaybookResult]:
    """A run's private folder (reports/runs), its ident, and its result, still empty."""
    private = settings.reports / "runs"
    private.mkdir(parents=True, exist_ok=True)
    ident = (
        f"{time.strftime('%Y%m%dT%H%M%S')}-{playbook.removesuffix('.yml')}-{uuid.uuid4().hex[:6]}"
    )
    return (
        private,
        ident,
        PlaybookResult(playbook, -1, "unknown", {}, 0.0, private / "artifacts" / ident),
    )


def _finish(result: PlaybookResult, runner: Any, duration_s: float) -> PlaybookResult:
    result.duration_s = round(duration_s, 3)
    result.rc = runner.rc
    result.status = runner.status
    result.stats = {
        host: {k: int((runner.stats or {}).get(k, {}).get(host, 0)) for k in _STAT_KEYS}
        for host in _hosts(runner.stats)
    }
    result.run_dir = Path(runner.config.artifact_dir)
    log.debug(
        "%s: %s (rc %s) in %.2fs, artifacts %s",
        result.playbook,
        result.status,
        result.rc,
        result.duration_s,
        result.run_dir,
    )
    return result


def _catch_interrupts(flag: threading.Event) -> Callable[[], None]:
    """While a playbook runs, Ctrl-C (or SIGTERM) cancels it through ansible-runner's
    cancel_callback; afterwards the previous handlers are back. (Left to itself, ansible-runner
    installs handlers of its own and never restores them: a later Ctrl-C would do nothing.)"""
    if threading.current_thread() is not threading.main_thread() or deferring():
        # A clean-up that must finish (an experiment's rollbacks) defers Ctrl-C itself.
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _n, _f: flag.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def _use_venv_ansible() -> None:
    """ansible-runner starts `ansible-playbook` from PATH: prefer the one beside this Python
    (the venv's), which a `.venv/bin/knight` run does not have on PATH."""
    here = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if (Path(here) / "ansible-playbook").exists() and here not in path.split(os.pathsep):
        os.environ["PATH"] = here + os.pathsep + path


_STAT_KEYS = ("ok", "changed", "failures", "dark", "rescued", "skipped", "ignored")


def _hosts(stats: dict[str, dict[str, int]] | None) -> list[str]:
    found: set[str] = set()
    for per_host in (stats or {}).values():
        if isinstance(per_host, dict):
            found |= set(per_host)
    return sorted(found)
