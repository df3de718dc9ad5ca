"""The kinds of fault, one module each, found by name: `FAULTS`, `make`, and `halt_all`.

Each kind knows how to find and undo all of its own traces across the lab from Docker's state
alone, so `halt_all` works even after the process that injected the faults died. Adding a kind
means adding one module here that defines a `Fault` subclass with a `NAME`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from toolkit.chaos.fault import Fault
from toolkit.errors import ConfigError, KnightError
from toolkit.lab.lab import Lab

__all__ = ["FAULTS", "halt_all", "make", "over_inventory", "refusal"]


def _discover() -> dict[str, type[Fault]]:
    found: dict[str, type[Fault]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Fault) and obj.NAME:
                found[obj.NAME] = obj
    return found


FAULTS: dict[str, type[Fault]] = _discover()


def over_inventory() -> list[str]:
    """The kinds of fault that can be done on a fleet reached through an inventory."""
    return sorted(name for name, cls in FAULTS.items() if cls.OVER_SSH)


def refusal(kind: str) -> str | None:
    """Why the fault `kind` cannot be done through an inventory; None when it can."""
    cls = FAULTS.get(kind)
    if cls is None or cls.OVER_SSH:
        return None
    return (
        f"needs the Docker engine; not possible through an inventory "
        f"(faults over ssh: {', '.join(over_inventory()) or 'none'})"
    )


def make(kind: str, lab: Lab, node: str, **options: Any) -> Fault:
    """The fault `kind` on `node` (not injected yet)."""
    try:
        cls = FAULTS[kind]
    except KeyError:
        raise ConfigError(f"unknown fault {kind!r} (faults: {', '.join(sorted(FAULTS))})") from None
    why = refusal(kind) if lab.through_inventory else None
    if why is not None:
        raise ConfigError(f"fault {kind}: {why}")
    return cls(lab, node, **options)


def halt_all(lab: Lab) -> dict[str, list[str]]:
    """Undo every fault of every kind in the lab: kind -> nodes repaired. Every kind is tried
    even when one fails (then a KnightError names each failure, after all were tried), in
    `HALT_RANK` order: a frozen container is thawed before anything needs to exec into it."""
    undone: dict[str, list[str]] = {}
    failed: list[str] = []
    for kind, cls in sorted(FAULTS.items(), key=lambda item: (item[1].HALT_RANK, item[0])):
        if lab.through_inventory and not cls.OVER_SSH:
            continue  # never done there: nothing of it to find
        try:
            undone[kind] = cls.halt(lab)
        except Exception as exc:  # a Docker error on one kind must not leave the others behind
            undone[kind] = []
            failed.append(f"{kind}: {type(exc).__name__}: {exc}")
    if failed:
        raise KnightError(f"halt-all could not undo every fault: {'; '.join(failed)}")
    return dict(sorted(undone.items()))
