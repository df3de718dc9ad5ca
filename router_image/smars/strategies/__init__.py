"""Strategies turn a parent order into child orders. Each module of this package defines one
Strategy subclass with a NAME; the registry finds the modules present in this release tree (a
release carries only its own strategies), so adding a strategy means adding one file."""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..book import Parent

__all__ = ["Context", "Strategy", "discover", "venue_reason"]


class Context(Protocol):
    """What the core offers a strategy."""

    slice_qty: int
    peg_interval_s: float
    peg_max_children_per_s: int

    def send_child(self, parent: Parent, qty: int) -> bool:
        """Send one child order through the egress; False when it refused."""
        ...

    def cancel_parent(self, parent: Parent, reason: str) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any: ...

    def time(self) -> float: ...


def venue_reason(reason: str) -> str:
    """The cancel reason a client sees when the venue refused a child."""
    return f"venue_{reason}" if reason in ("cap", "invalid") else "venue_reject"


class Strategy:
    """One instance per node; the core calls it for the parents routed to it and never sends
    a child on its behalf."""

    NAME: ClassVar[str] = ""
    # Whether its parents finish on their own; a release switch waits for those (bounded) and
    # a lost venue connection cancels them.
    SETTLES: ClassVar[bool] = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def on_parent(self, parent: Parent) -> None:
        """A new working parent: send its first child orders."""
        raise NotImplementedError

    def on_execution(self, parent: Parent, qty: int) -> None:
        """An execution of one of the parent's children was booked in its tracker."""

    def on_child_rejected(self, parent: Parent, reason: str) -> None:
        """The venue refused a child: stop the parent rather than hammer a venue that says no."""
        self.ctx.cancel_parent(parent, venue_reason(reason))

    def is_finished(self, parent: Parent) -> bool:
        return parent.tracker.settled


def discover(package: str = __name__) -> dict[str, type[Strategy]]:
    """NAME -> class for every strategy module present in `package`."""
    found: dict[str, type[Strategy]] = {}
    path = importlib.import_module(package).__path__
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not _has_source(path, info.name):
            # A sourceless module (`x.pyc`) is no file of the release's hash: never import it.
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Strategy)
                and obj.__module__ == module.__name__
                and obj.NAME
            ):
                if obj.NAME in found:
                    raise ImportError(f"strategy {obj.NAME!r} defined twice ({module.__name__})")
                found[obj.NAME] = obj
    return found


def _has_source(path: Any, name: str) -> bool:
    return any(
        os.path.isfile(os.path.join(folder, f"{name}.py"))
        or os.path.isfile(os.path.join(folder, name, "__init__.py"))
        for folder in path
    )
