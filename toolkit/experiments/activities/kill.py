"""kill: the kill switch. Every node stops trading and cancels its working orders."""

from __future__ import annotations

from typing import Any

from toolkit.deploy.operations import killswitch
from toolkit.experiments.state import RunState

from .schema import Spec, StepOutcome

SPEC = Spec(name="kill", summary="Pull the kill switch on every node.")


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    """The kill switch on every node, through the killswitch playbook."""
    result = killswitch(run.lab, True)
    if run.phase == "method":
        run.kill_times.append(run.journal.elapsed())
    if result.status != "done":
        return StepOutcome("failed", result.error or result.status)
    return StepOutcome("done", f"every node killed in {result.duration_s:.1f}s")
