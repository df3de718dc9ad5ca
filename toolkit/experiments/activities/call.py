"""How an activity is called from outside knight's runner (a Chaos Toolkit file): `activity`
checks the arguments against the activity's `SPEC` where they enter, and what every activity
returns (`done`, `refused`) is plain JSON-able data.

An activity function is `fn(<its arguments>, configuration=None, secrets=None) -> dict`. A wrong
argument ends in one line naming the activity and the argument (`deploy: release: '9' is not a
release ...`). knight's runner checked its file's arguments when it loaded it (with file and
line), so it calls the function underneath (`fn.__wrapped__`) with them as they are.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from toolkit.errors import ConfigError, KnightError
from toolkit.experiments.context import context

from .schema import ArgError, Context, Spec

__all__ = ["ActivityError", "activity", "done", "outcome_of", "refused", "spec_of"]

F = TypeVar("F", bound=Callable[..., dict[str, Any]])
#: Set on an activity function by `activity`: its SPEC.
_SPEC_ATTR = "knight_spec"


class ActivityError(ConfigError):
    """An activity was called with an argument it does not take or a value it refuses."""


def spec_of(fn: Callable[..., Any]) -> Spec | None:
    """The SPEC of an activity function, None for any other callable."""
    return getattr(fn, _SPEC_ATTR, None)


def activity(spec: Spec) -> Callable[[F], F]:
    """Make `fn` the activity `spec`: called from outside, its arguments are checked first."""

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> dict[str, Any]:
            configuration = kwargs.pop("configuration", None)
            secrets = kwargs.pop("secrets", None)
            try:
                given = signature.bind_partial(*args, **kwargs).arguments
            except TypeError as exc:
                raise ActivityError(f"{spec.name}: {exc}") from None
            values = check_args(spec, given, _schema_context(configuration))
            return fn(**values, configuration=configuration, secrets=secrets)

        setattr(checked, _SPEC_ATTR, spec)
        return checked  # type: ignore[return-value]

    return wrap


def check_args(spec: Spec, given: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Every argument of `spec`: the given ones checked, the others their defaults."""
    values: dict[str, Any] = {}
    for name, rule in spec.args.items():
        if name in given:
            try:
                values[name] = rule.kind(given[name], ctx)
            except ArgError as exc:
                raise ActivityError(f"{spec.name}: {name}: {exc}") from None
        elif rule.required:
            raise ActivityError(f"{spec.name}: missing required argument {name!r} ({rule.doc})")
        else:
            values[name] = rule.default
    if spec.check is not None:
        try:
            spec.check(values, ctx)
        except ArgError as exc:
            raise ActivityError(f"{spec.name}: {exc}") from None
    return values


def _schema_context(configuration: dict[str, Any] | None) -> Context:
    lab = context(configuration).lab
    return Context(tuple(lab.settings.node_names), tuple(lab.catalog.versions))


def done(name: str, detail: str = "", **data: Any) -> dict[str, Any]:
    """What an activity that acted returns."""
    return {"activity": name, "status": "done", "detail": detail, **data}


def refused(name: str, detail: str, guard: str | None) -> dict[str, Any]:
    """What an activity returns when a guard said no: nothing changed, and `guard` says which."""
    return {"activity": name, "status": "refused", "detail": detail, "guard": guard}


def outcome_of(result: Any) -> tuple[str, str, str | None]:
    """(status, detail, guard) of what an activity returned."""
    if not isinstance(result, dict) or result.get("status") not in ("done", "refused"):
        raise KnightError(f"an activity returned {result!r}")
    return result["status"], result.get("detail", ""), result.get("guard")
