"""The activities an experiment's method and rollbacks are made of: the schema of each one's
arguments, one module per activity (`deploy.py`, `flag.py`, ...), each defining `SPEC` and
`act(run, args) -> StepOutcome`.

Adding an activity means adding one module here; `ACTIVITIES` and `ACTIVITY_ACTS` find it. An
activity acts on the lab through the run's shared state (`toolkit.experiments.state.RunState`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from toolkit.experiments.state import RunState

from .schema import Arg, ArgError, Context, Spec, StepOutcome

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_ACTS",
    "Act",
    "Arg",
    "ArgError",
    "Context",
    "Spec",
    "StepOutcome",
]

#: What an activity does: `act(run, args) -> StepOutcome`.
Act = Callable[[RunState, dict[str, Any]], StepOutcome]


def _discover() -> dict[str, Spec]:
    found: dict[str, Spec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, Spec):
            found[spec.name] = spec
    return found


#: Activity name -> its schema.
ACTIVITIES: dict[str, Spec] = _discover()


def _acts() -> dict[str, Act]:
    found: dict[str, Act] = {}
    for name in ACTIVITIES:
        module = importlib.import_module(f"{__name__}.{name}")
        found[name] = module.act
    return found


#: Activity name -> what it does: `act(run, args) -> StepOutcome`.
ACTIVITY_ACTS: dict[str, Act] = _acts()
