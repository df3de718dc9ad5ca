"""close: the market closes. Every load an `open` started stops sending; their accounts come in.

Without a close step the market closes when the method ends (after an abort or Ctrl-C too).
"""

from __future__ import annotations

from typing import Any

from toolkit.experiments.state import RunState, close_market

from .schema import Spec, StepOutcome

SPEC = Spec(name="close", summary="Close the market: the open's parent orders stop.")


def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
    if not close_market(run):
        return StepOutcome("done", "the market was not open")
    return StepOutcome("done", "no more parent orders")
