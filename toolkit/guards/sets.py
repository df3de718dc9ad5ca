"""The six guards by name, and the set of them a command or an experiment runs with.

Each guard is independent, so its effect can be measured alone: `atomic` (the all-or-none
deploy), `fencing` (a router whose running tree is not the fleet manifest's refuses to trade),
`flags` (the flag registry, at deploy time and in the router), `risk` (the router's egress
gate), `monitor` (alerts and the automatic kill switch) and `rollback` (the rollback planner).
The router-side part of `fencing`, `flags` and `risk` is switched through each node's
guards file; the others act in the toolkit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from toolkit.errors import ConfigError

__all__ = ["GUARDS", "ROUTER_GUARDS", "GuardSet", "default_guards"]

GUARDS = ("atomic", "fencing", "flags", "risk", "monitor", "rollback")
#: The guards that the routers themselves enforce (their /etc/smars/guards.json).
ROUTER_GUARDS = ("fencing", "flags", "risk")
#: What commands run by hand use unless told otherwise (KNIGHT_GUARDS, --guards). The flag
#: registry is left out so that `knight deploy 8.0.0` deploys the release that reuses flag_7,
#: as the 2012 fleet did; experiments and `--guards all` turn it on.
DEFAULT = ("atomic", "fencing", "risk", "rollback")


@dataclass(frozen=True)
class GuardSet:
    atomic: bool = False
    fencing: bool = False
    flags: bool = False
    risk: bool = False
    monitor: bool = False
    rollback: bool = False

    @classmethod
    def of(cls, names: list[str] | tuple[str, ...] | set[str]) -> GuardSet:
        unknown = sorted(set(names) - set(GUARDS))
        if unknown:
            raise ConfigError(f"unknown guard {unknown[0]!r} (guards: {', '.join(GUARDS)})")
        return cls(**dict.fromkeys(names, True))

    @classmethod
    def parse(cls, text: str) -> GuardSet:
        """`atomic,flags`, `all`, or `none` (also the empty string)."""
        text = text.strip()
        if text == "all":
            return cls.all()
        if text in ("", "none"):
            return cls()
        return cls.of([name.strip() for name in text.split(",") if name.strip()])

    @classmethod
    def all(cls) -> GuardSet:
        return cls.of(GUARDS)

    @classmethod
    def for_mode(cls, mode: str) -> GuardSet:
        """`unsafe` means none, `guarded` means all."""
        if mode == "unsafe":
            return cls()
        if mode == "guarded":
            return cls.all()
        raise ConfigError(f"unknown mode {mode!r} (unsafe or guarded)")

    @property
    def names(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def to_json(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in GUARDS}

    def router_file(self) -> dict[str, bool]:
        """The routers' guards file: the switches they enforce themselves."""
        return {name: getattr(self, name) for name in ROUTER_GUARDS}

    def label(self) -> str:
        names = self.names
        if len(names) == len(GUARDS):
            return "all"
        return "+".join(names) if names else "none"


def default_guards() -> GuardSet:
    """KNIGHT_GUARDS from the environment, else DEFAULT."""
    raw = os.environ.get("KNIGHT_GUARDS")
    if raw is None:
        return GuardSet.of(DEFAULT)
    try:
        return GuardSet.parse(raw)
    except ConfigError as exc:
        raise ConfigError(f"KNIGHT_GUARDS: {exc}") from None
