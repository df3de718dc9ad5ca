"""The `refusal` control: when a guard refuses a step of the method, the steps after it do not
run (knight's `on_refused: stop`), except the close of the market; the rollbacks and the
hypotheses do. Steps named in `continue_after` (knight's `on_refused: continue`) let the method
go on.

A stopped step is not removed: its provider becomes `actions.skipped`, so the journal shows it
with why it did not run.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = [
    "after_activity_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "before_rollback_control",
]

ACTIONS = "toolkit.chaostoolkit.actions"
#: Never skipped: the close of the market ends what the method opened.
NEVER_SKIPPED = ("close_market",)

_state: dict[str, Any] = {"phase": None, "stopped_by": None}
_lock = threading.Lock()


def before_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    with _lock:
        _state.update(phase=None, stopped_by=None)


def before_method_control(context: dict[str, Any], **kwargs: Any) -> None:
    with _lock:
        _state["phase"] = "method"


def before_rollback_control(context: dict[str, Any], **kwargs: Any) -> None:
    with _lock:
        _state["phase"] = "rollbacks"


def before_activity_control(context: dict[str, Any], **kwargs: Any) -> None:
    """A knight action of the method after a refusal: made a `skipped` step."""
    provider = context.get("provider") or {}
    with _lock:
        stopped_by = _state["stopped_by"] if _state["phase"] == "method" else None
    if stopped_by is None or provider.get("module") != ACTIONS:
        return
    if provider.get("func") in NEVER_SKIPPED:
        return
    context["provider"] = {
        "type": "python",
        "module": ACTIONS,
        "func": "skipped",
        "arguments": {
            "activity": context.get("name", ""),
            "reason": f"method stopped: {stopped_by} was refused",
        },
    }


def after_activity_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    continue_after: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """A method step a guard refused stops the method, unless it is named in `continue_after`."""
    output = (state or {}).get("output")
    if not isinstance(output, dict) or output.get("status") != "refused":
        return
    name = context.get("name", "")
    with _lock:
        if _state["phase"] == "method" and name not in (continue_after or []):
            _state["stopped_by"] = _state["stopped_by"] or name
