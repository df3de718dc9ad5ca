"""The activities an experiment's method and rollbacks are made of: the schema of each one's
arguments, one module per activity (`deploy.py`, `flag.py`, ...), each defining `SPEC`.

Adding an activity means adding one module here; `ACTIVITIES` finds it. How an activity acts on
the lab is the experiment runner's business, not this package's.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from .schema import Arg, ArgError, Context, Spec

__all__ = ["ACTIVITIES", "ACTIVITY_ACTS", "Arg", "ArgError", "Context", "Spec"]


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


def _acts() -> dict[str, Callable[..., Any]]:
    found = {}
    for name in ACTIVITIES:
        module = importlib.import_module(f"{__name__}.{name}")
        found[name] = module.act
    return found


#: Activity name -> what it does: `act(run, args) -> StepOutcome`.
ACTIVITY_ACTS: dict[str, Callable[..., Any]] = _acts()
