"""The loaded experiment as data: its steps (Activity), probes, abort conditions and expectations,
and the Experiment that holds them. A loaded Experiment is valid, with every default filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError

from .rollout import deploy_targets, rollback_targets
from .schema import ABORTS, EXPECTATIONS, MODES

__all__ = [
    "AbortCondition",
    "Activity",
    "Expectation",
    "ExpectationResult",
    "Expectations",
    "Experiment",
    "ExperimentInfo",
    "Probe",
]


@dataclass(frozen=True)
class Activity:
    """One step of the method or the rollbacks: a known activity with checked arguments."""

    name: str
    args: dict[str, Any]
    label: str
    on_refused: str = "stop"  # stop: later steps of the method do not run; continue: they do
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "activity": self.name,
            "args": {k: list(v) if isinstance(v, tuple) else v for k, v in self.args.items()},
            "label": self.label,
            "on_refused": self.on_refused,
        }


@dataclass(frozen=True)
class Probe:
    """A steady-state probe and its tolerance."""

    name: str
    tolerance: Any
    line: int | None = None

    def holds(self, observed: Any) -> bool:
        """Whether an observed value is within tolerance (fleet_uniform: node -> release)."""
        if self.name == "fleet_uniform":
            releases = set((observed or {}).values())
            return len(releases) == 1 and self.tolerance in ("any", *releases)
        return observed is not None and observed <= self.tolerance

    def to_json(self) -> dict[str, Any]:
        return {"probe": self.name, "tolerance": self.tolerance}


@dataclass(frozen=True)
class AbortCondition:
    """Stop the method early when an observation goes over a limit (rollbacks still run)."""

    name: str
    limit: float
    line: int | None = None

    @property
    def observes(self) -> str:
        return ABORTS[self.name].observes

    def tripped(self, observation: Mapping[str, float]) -> bool:
        """`observation` has `excess_shares`, `child_orders`, `elapsed_s` (any may be missing)."""
        value = observation.get(self.observes)
        return value is not None and value > self.limit

    def to_json(self) -> dict[str, Any]:
        return {self.name: self.limit}


@dataclass(frozen=True)
class Expectation:
    name: str
    value: Any
    line: int | None = None


@dataclass(frozen=True)
class ExpectationResult:
    name: str
    expected: Any
    actual: Any
    met: bool

    def to_json(self) -> dict[str, Any]:
        expected = list(self.expected) if isinstance(self.expected, tuple) else self.expected
        return {"name": self.name, "expected": expected, "actual": self.actual, "met": self.met}


@dataclass(frozen=True)
class Expectations:
    """What a run in one mode should show; `check` compares a journal (its JSON) with it."""

    mode: str
    items: tuple[Expectation, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        return next((e.value for e in self.items if e.name == name), default)

    def check(self, journal: Mapping[str, Any]) -> list[ExpectationResult]:
        results = []
        for item in self.items:
            met, actual = EXPECTATIONS[item.name].check(item.value, journal)
            results.append(ExpectationResult(item.name, item.value, actual, bool(met)))
        return results

    def to_json(self) -> dict[str, Any]:
        return {
            e.name: list(e.value) if isinstance(e.value, tuple) else e.value for e in self.items
        }


@dataclass(frozen=True)
class Experiment:
    """A validated experiment, parameters substituted, every default filled in."""

    id: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Any]
    fleet: tuple[str, ...]
    steady_state: tuple[Probe, ...]
    method: tuple[Activity, ...]
    abort: tuple[AbortCondition, ...] = ()
    rollbacks: tuple[Activity, ...] = ()
    expect: dict[str, Expectations] = field(default_factory=dict)

    def expectations(self, mode: str) -> Expectations:
        """What a run in `mode` (unsafe or guarded) should show; empty when the file says nothing."""
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
        return self.expect.get(mode, Expectations(mode))

    def plan(self) -> dict[str, str | None]:
        """Each node's release after the method's deploys and rollbacks run as written (no guard);
        None is the release the node started on. A rollback without `to` returns to None."""
        running: dict[str, str | None] = dict.fromkeys(self.fleet)
        for step in self.method:
            if step.name == "deploy":
                for node in deploy_targets(step.args, self.fleet, running):
                    running[node] = step.args["release"]
            elif step.name == "rollback":
                for node in rollback_targets(step.args, self.fleet):
                    running[node] = step.args["to"]
        return running

    def not_deployed(self) -> tuple[str, ...]:
        """The nodes no deploy step of the method reaches (a skipped node, a half-done rollout)."""
        reached: set[str] = set()
        running: dict[str, str | None] = dict.fromkeys(self.fleet)
        for step in self.method:
            if step.name == "deploy":
                targets = deploy_targets(step.args, self.fleet, running)
                reached.update(targets)
                running.update(dict.fromkeys(targets, step.args["release"]))
        if not any(step.name == "deploy" for step in self.method):
            return ()
        return tuple(n for n in self.fleet if n not in reached)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "title": self.title,
            "description": self.description,
            "parameters": dict(self.parameters),
            "steady_state": [p.to_json() for p in self.steady_state],
            "method": [a.to_json() for a in self.method],
            "abort": [a.to_json() for a in self.abort],
            "rollbacks": [a.to_json() for a in self.rollbacks],
            "expect": {mode: e.to_json() for mode, e in self.expect.items()},
        }


@dataclass(frozen=True)
class ExperimentInfo:
    """One line of `knight experiment list`; `error` says why a file does not load."""

    id: str
    path: Path
    title: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "title": self.title,
            "description": self.description,
            "parameters": dict(self.parameters),
            "error": self.error,
        }
