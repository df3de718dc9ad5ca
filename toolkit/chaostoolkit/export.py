"""An experiment file as a Chaos Toolkit experiment (JSON): the steady state as a hypothesis with
knight's tolerances, the method and the rollbacks as knight's actions, the parameters as the
configuration (so `chaos run --var node=smars-3` sets one), and knight's three controls. With
an inventory, the configuration names it (`knight_inventory`): the run acts on that fleet.

An argument written with a parameter (`skip: ["{node}"]`) keeps it (`["${node}"]`), for the
Chaos Toolkit to fill from the configuration when it runs; every other value is written as the
loader checked it. The method ends with a close of the market, so the hypothesis after it sees
every load accounted for, as knight's runner's does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError
from toolkit.experiments.context import GUARDS_KEY, INVENTORY_KEY, LAB_KEY
from toolkit.experiments.model import Activity, Experiment, Probe
from toolkit.experiments.reach import check_reach
from toolkit.guards.sets import GuardSet
from toolkit.yamlfile import load_yaml

from . import EXTENSION, __version__

__all__ = ["FORMATS", "export_experiment"]

FORMATS = ("chaostoolkit",)
ACTIONS = "toolkit.chaostoolkit.actions"
PROBES = "toolkit.chaostoolkit.probes"
CONTROLS = "toolkit.chaostoolkit.controls"
#: knight's activity name -> the action's function, where they differ.
FUNCTIONS = {"open": "open_market", "close": "close_market"}
#: The probes that measure the damage (the venue's counts, the load accounts). The Chaos Toolkit
#: stops a hypothesis at its first probe out of tolerance, so these go first: after the method,
#: its journal then names the damage (excess shares), not only the fleet's shape.
DAMAGE_PROBES = ("excess_shares", "orders_lost")
_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def export_experiment(
    exp: Experiment, mode: str, to: str = "chaostoolkit", inventory: Path | None = None
) -> dict[str, Any]:
    """`exp` (loaded, its `--set` values applied) as a Chaos Toolkit experiment run in `mode`;
    with `inventory`, run on the fleet it declares (`knight_inventory` in the configuration)."""
    if to not in FORMATS:
        raise ConfigError(f"unknown format {to!r} (formats: {', '.join(FORMATS)})")
    if inventory is not None:
        check_reach(exp)
    guards = GuardSet.for_mode(mode)
    raw = load_yaml(exp.path)
    method = [_action(s, r, i) for i, (s, r) in enumerate(_with_raw(exp.method, raw, "method"))]
    method.append(_close_at_end(len(method)))
    rollbacks = [
        _action(s, r, i, "rollback")
        for i, (s, r) in enumerate(_with_raw(exp.rollbacks, raw, "rollbacks"))
    ]
    return {
        "version": "1.0.0",
        "title": f"{exp.title} ({mode})",
        "description": exp.description or exp.title,
        "tags": [EXTENSION, exp.id, mode],
        "extensions": [
            {"name": EXTENSION, "version": __version__, "experiment": exp.id, "mode": mode}
        ],
        "configuration": _configuration(exp, mode, guards)
        | ({INVENTORY_KEY: str(inventory.resolve())} if inventory is not None else {}),
        "controls": _controls(exp),
        "steady-state-hypothesis": {
            "title": "the fleet is uniform and healthy, and no order is lost or overfilled",
            "probes": [_probe(p) for p in _damage_first(exp.steady_state)],
        },
        "method": method,
        "rollbacks": rollbacks,
    }


def _configuration(exp: Experiment, mode: str, guards: GuardSet) -> dict[str, Any]:
    config: dict[str, Any] = {
        LAB_KEY: {"type": "env", "key": "KNIGHT_LAB", "default": "knight"},
        GUARDS_KEY: ",".join(guards.names) or "none",
        "knight_experiment": exp.id,
        "knight_mode": mode,
    }
    for name, value in exp.parameters.items():
        config[name] = value
    return config


def _controls(exp: Experiment) -> list[dict[str, Any]]:
    go_on = [_name(s, i) for i, s in enumerate(exp.method) if s.on_refused == "continue"]
    return [
        {"name": "knight-guards", "provider": {"type": "python", "module": f"{CONTROLS}.guards"}},
        {
            "name": "knight-refusal",
            "provider": {
                "type": "python",
                "module": f"{CONTROLS}.refusal",
                "arguments": {"continue_after": go_on},
            },
        },
        {"name": "knight-cleanup", "provider": {"type": "python", "module": f"{CONTROLS}.cleanup"}},
    ]


def _damage_first(probes: tuple[Probe, ...]) -> list[Probe]:
    """The file's probes, those of DAMAGE_PROBES first (each group in the file's order)."""
    return sorted(probes, key=lambda p: p.name not in DAMAGE_PROBES)


def _probe(probe: Probe) -> dict[str, Any]:
    if isinstance(probe.tolerance, int) and not isinstance(probe.tolerance, bool):
        tolerance: Any = {"type": "range", "range": [0, probe.tolerance]}
    else:
        tolerance = {
            "type": "probe",
            "name": f"{probe.name} within {probe.tolerance}",
            "provider": {
                "type": "python",
                "module": "toolkit.chaostoolkit.tolerances",
                "func": "holds",
                "arguments": {"probe": probe.name, "tolerance": probe.tolerance},
            },
        }
    return {
        "type": "probe",
        "name": probe.name,
        "tolerance": tolerance,
        "provider": {"type": "python", "module": PROBES, "func": probe.name},
    }


def _with_raw(steps: tuple[Activity, ...], raw: Any, section: str) -> list[tuple[Activity, Any]]:
    items = raw.get(section) or [] if isinstance(raw, dict) else []
    return [(s, items[i][s.name] or {}) for i, s in enumerate(steps)]


def _name(step: Activity, index: int, section: str = "method") -> str:
    """A unique name: the Chaos Toolkit names each activity, and the refusal control goes by it."""
    return f"{section}-{index + 1}-{step.name}"


def _action(step: Activity, raw_args: Any, index: int, section: str = "method") -> dict[str, Any]:
    args = {key: _value(raw_args[key], step.args[key]) for key in raw_args}
    return {
        "type": "action",
        "name": _name(step, index, section),
        "provider": {
            "type": "python",
            "module": ACTIONS,
            "func": FUNCTIONS.get(step.name, step.name),
            "arguments": args,
        },
        "description": step.label,
    }


def _value(raw: Any, checked: Any) -> Any:
    """The value written: the parameter it names (`${node}`), else the checked value."""
    if isinstance(raw, str) and _PARAM.search(raw):
        return _PARAM.sub(r"${\1}", raw)
    if isinstance(raw, list) and any(isinstance(v, str) and _PARAM.search(v) for v in raw):
        return [_PARAM.sub(r"${\1}", v) if isinstance(v, str) else v for v in raw]
    return list(checked) if isinstance(checked, tuple) else checked


def _close_at_end(index: int) -> dict[str, Any]:
    return {
        "type": "action",
        "name": f"method-{index + 1}-close",
        "provider": {"type": "python", "module": ACTIONS, "func": "close_market"},
        "description": "the market closes: the method is over",
    }
