"""The `guards` control: before a Chaos Toolkit experiment, the lab it names is held for it and
reset to its baseline with the configuration's guards, as knight's own runner starts a run.

The Chaos Toolkit logs a control's error at debug level and goes on; an experiment must not run
with guards it did not ask for, so any failure here interrupts it (InterruptExecution: the
rollbacks still run), saying why in one line."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any

from chaoslib.exceptions import InterruptExecution

from toolkit.chaos.kinds import halt_all
from toolkit.experiments.context import context as knight_context
from toolkit.lab.notes import begin_run, update_notes

__all__ = ["after_experiment_control", "before_experiment_control", "cleanup_control"]

#: The lab lock held from before the experiment to after it (one experiment per process).
_held = ExitStack()
_holding = threading.Lock()


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    """Hold the lab, end what an earlier run left (faults, loads), reset it with the guards."""
    try:
        _prepare(str(context.get("title", "")), configuration)
    except Exception as exc:
        _release()
        raise InterruptExecution(f"knight could not prepare the lab: {exc}") from None


def _prepare(title: str, configuration: dict[str, Any] | None) -> None:
    ctx = knight_context(configuration)
    lab = ctx.lab
    with _holding:
        _held.enter_context(lab.exclusive(f"chaos run {title!r}"))
    halt_all(lab)
    begin_run(lab)
    lab.reset(ctx.guards)
    lab.wait_healthy(timeout=30)
    started = lab.venue_admin().get("/stats").get("started_at")
    update_notes(lab.settings, venue_started_at=started, guards=ctx.guards.to_json())


def after_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    """Let the lab go (the cleanup control has made it safe)."""
    _release()


def cleanup_control() -> None:
    _release()


def _release() -> None:
    with _holding:
        _held.close()
