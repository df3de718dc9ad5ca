"""What an activity or probe is called with besides its own arguments: the Chaos Toolkit's
`configuration` mapping (the lab's name, the guards, the inventory), read into a `Context`.

The keys of the configuration are a contract (docs/chaostoolkit.md):

- `knight_lab`: the lab's name (default: KNIGHT_LAB, else `knight`);
- `knight_guards`: the guards the toolkit applies, comma-separated names, `all` or `none`
  (default: KNIGHT_GUARDS, else the default set);
- `knight_inventory`: the inventory of the fleet to reach, with the market it names (default:
  none, the lab). Read here and nowhere else, and handed to `_lab`, the one place an activity
  gets the fleet it acts on.

knight's own runner binds its lab, its guards and its run (which records what the steps do in
the journal) under the lab's name for as long as the run lasts (`bound`); any other caller (a
`chaos run`) gets a context made from the configuration, whose recorder only logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from toolkit.deploy.fleet_lab import FleetLab, fleet_lab
from toolkit.errors import ConfigError
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.lab.lab import Lab
from toolkit.settings import load_settings, settings_for_lab

if TYPE_CHECKING:
    from toolkit.chaos.fault import Fault
    from toolkit.lab.load import LoadResult

__all__ = [
    "GUARDS_KEY",
    "INVENTORY_KEY",
    "LAB_KEY",
    "Context",
    "Recorder",
    "bound",
    "configuration_for",
    "context",
]

LAB_KEY = "knight_lab"
GUARDS_KEY = "knight_guards"
INVENTORY_KEY = "knight_inventory"

log = logging.getLogger("knight.activities")


class Recorder(Protocol):
    """Who hears what the activities do, as they do it (knight's run: its journal)."""

    def event(self, kind: str, node: str | None, detail: str) -> None: ...
    def in_background(self, name: str, work: Callable[[], None]) -> threading.Thread: ...
    def mark_fault(self) -> None: ...
    def killed(self) -> None: ...
    def until_end(self, fault: Fault) -> None: ...
    def load_account(self, what: str, result: LoadResult) -> None: ...
    def load_error(self, what: str, error: str) -> None: ...


class _Logged:
    """The recorder of a caller that keeps no journal: everything goes to the "knight" log."""

    def event(self, kind: str, node: str | None, detail: str) -> None:
        log.info("%s%s: %s", kind, f" {node}" if node else "", detail)

    def in_background(self, name: str, work: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=work, name=name, daemon=True)
        thread.start()
        return thread

    def mark_fault(self) -> None:
        pass

    def killed(self) -> None:
        pass

    def until_end(self, fault: Fault) -> None:
        log.info("%s on %s stays until the end (halt-all undoes it)", fault.NAME, fault.node)

    def load_account(self, what: str, result: LoadResult) -> None:
        log.info("%s: %d parent orders, %d unanswered", what, result.sent, result.unanswered)

    def load_error(self, what: str, error: str) -> None:
        log.error("%s: %s", what, error)


@dataclass
class Context:
    """The lab an activity acts on, the guards it applies, the event that cuts a wait short,
    and who hears what it does."""

    lab: Lab
    guards: GuardSet
    stop: threading.Event = field(default_factory=threading.Event)
    recorder: Recorder = field(default_factory=_Logged)


#: Lab name -> the context knight's runner bound for the run it is making.
_bound: dict[str, Context] = {}
_binding = threading.Lock()


def configuration_for(lab: Lab, guards: GuardSet) -> dict[str, Any]:
    """The configuration naming `lab` (and its inventory, for a fleet reached through one) and
    `guards`: what knight's runner passes its activities."""
    config = {LAB_KEY: lab.settings.lab, GUARDS_KEY: ",".join(guards.names) or "none"}
    if isinstance(lab, FleetLab):
        config[INVENTORY_KEY] = str(lab.inventory_path)
    return config


@contextmanager
def bound(ctx: Context) -> Iterator[Context]:
    """While the block runs, an activity called for this lab gets `ctx` (knight's runner)."""
    name = ctx.lab.settings.lab
    with _binding:
        _bound[name] = ctx
    try:
        yield ctx
    finally:
        with _binding:
            if _bound.get(name) is ctx:
                del _bound[name]


def context(configuration: Mapping[str, Any] | None) -> Context:
    """The context for a call with `configuration` (None: everything from the environment)."""
    config = dict(configuration or {})
    name = config.get(LAB_KEY) or load_settings().lab
    with _binding:
        found = _bound.get(name)
    if found is not None:
        return found
    raw = config.get(GUARDS_KEY)
    try:
        guards = GuardSet.parse(raw) if raw is not None else default_guards()
    except (ConfigError, AttributeError) as exc:
        raise ConfigError(f"configuration {GUARDS_KEY}: {exc}") from None
    return Context(_lab(name, config.get(INVENTORY_KEY)), guards)


def _lab(name: str, inventory: Any) -> Lab:
    """The fleet an activity reaches: the lab `name`, or the fleet `inventory` declares (with
    the market it names: toolkit/deploy/fleet_lab.py)."""
    if inventory:
        if not isinstance(inventory, str):
            raise ConfigError(f"configuration {INVENTORY_KEY}: a path, not {inventory!r}")
        return fleet_lab(inventory, settings_for_lab(name))
    return Lab(settings_for_lab(name))
