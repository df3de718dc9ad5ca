"""The activities an experiment's method and rollbacks are made of: the schema of each one's
arguments, one module per activity (`deploy.py`, `flag.py`, ...), each defining `SPEC` and one
plain function `fn(<its arguments>, configuration=None, secrets=None) -> dict` made an activity
by `call.activity(SPEC)`.

Adding an activity means adding one module here; `ACTIVITIES`, `ACTIVITY_FUNCTIONS` and
`ACTIVITY_ACTS` find it. knight's runner calls the functions through `ACTIVITY_ACTS`
(`act(run, args) -> StepOutcome`), the Chaos Toolkit calls them as they are
(toolkit/chaostoolkit/actions.py): one implementation behind both.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from toolkit.experiments.state import RunState

from .call import ActivityError, outcome_of, spec_of
from .schema import Arg, ArgError, Context, Spec, StepOutcome

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_ACTS",
    "ACTIVITY_FUNCTIONS",
    "Act",
    "ActivityError",
    "Arg",
    "ArgError",
    "Context",
    "Spec",
    "StepOutcome",
]

#: What knight's runner calls: `act(run, args) -> StepOutcome`.
Act = Callable[[RunState, dict[str, Any]], StepOutcome]


def _discover() -> dict[str, Callable[..., dict[str, Any]]]:
    found: dict[str, Callable[..., dict[str, Any]]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            spec = spec_of(value) if callable(value) else None
            if spec is not None and getattr(value, "__module__", None) == module.__name__:
                found[spec.name] = value
    return found


#: Activity name -> its plain function (checked arguments, configuration, secrets).
ACTIVITY_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = _discover()

#: Activity name -> its schema.
ACTIVITIES: dict[str, Spec] = {
    name: spec for name, fn in ACTIVITY_FUNCTIONS.items() if (spec := spec_of(fn)) is not None
}


def _act(fn: Callable[..., dict[str, Any]]) -> Act:
    """knight's runner's way in: the loader checked the arguments (and said which line was
    wrong), so the function underneath the check is called with them, and the run's context."""
    plain = fn.__wrapped__  # type: ignore[attr-defined]

    def act(run: RunState, args: dict[str, Any]) -> StepOutcome:
        status, detail, guard = outcome_of(plain(**args, configuration=run.configuration))
        return StepOutcome(status, detail, guard)

    return act


#: Activity name -> what it does in knight's runner: `act(run, args) -> StepOutcome`.
ACTIVITY_ACTS: dict[str, Act] = {name: _act(fn) for name, fn in ACTIVITY_FUNCTIONS.items()}
