"""kill: the kill switch. Every node stops trading and cancels its working orders."""

from __future__ import annotations

from typing import Any

from toolkit.deploy.operations import killswitch
from toolkit.errors import KnightError
from toolkit.experiments.context import context

from .call import activity, done
from .schema import Spec

SPEC = Spec(name="kill", summary="Pull the kill switch on every node.")


@activity(SPEC)
def kill(
    configuration: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The kill switch on every node, through the killswitch playbook."""
    ctx = context(configuration)
    result = killswitch(ctx.lab, True)
    ctx.recorder.killed()
    if result.status != "done":
        raise KnightError(result.error or result.status)
    return done(SPEC.name, f"every node killed in {result.duration_s:.1f}s")
