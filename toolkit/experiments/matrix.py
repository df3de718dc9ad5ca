"""The defense-in-depth matrix: every experiment run with no guard, with each guard alone and
with all of them, so the table shows what each guard stops by itself and what they stop
together. Each run is an ordinary experiment run with its own journal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.guards.sets import GUARDS, GuardSet
from toolkit.lab.lab import Lab

from .journal import Journal
from .loader import load_experiment
from .run import run_experiment

__all__ = ["DEFAULT_EXPERIMENTS", "Matrix", "guard_sets", "matrix_size", "run_matrix"]

DEFAULT_EXPERIMENTS = ("skipped_node", "reused_flag", "rollback")


def guard_sets() -> list[tuple[str, str, GuardSet]]:
    """(column, mode, guards): none, each guard alone, all."""
    sets = [("none", "unsafe", GuardSet())]
    sets += [(name, "guarded", GuardSet.of([name])) for name in GUARDS]
    sets.append(("all", "guarded", GuardSet.all()))
    return sets


def matrix_size(experiments: list[str] | None = None) -> int:
    """How many runs the matrix of `experiments` (default: DEFAULT_EXPERIMENTS) makes."""
    return len(experiments or DEFAULT_EXPERIMENTS) * len(guard_sets())


@dataclass
class Matrix:
    columns: list[str]
    #: experiment -> column -> excess shares
    cells: dict[str, dict[str, int | None]] = field(default_factory=dict)
    runaway: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    journals: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "excess_shares": self.cells,
            "runaway_nodes": self.runaway,
            "journals": self.journals,
        }


def run_matrix(
    lab: Lab,
    experiments: list[str] | None = None,
    say: Callable[[str], None] | None = None,
    observe: Callable[[Journal], None] | None = None,
) -> Matrix:
    """Every experiment with no guard, each guard alone, and all of them. `say` hears a line
    as each run begins, `observe` gets each run's journal as it begins (a live view). A Ctrl-C
    ends the run under way as any run ends (rollbacks, journal), then the matrix
    (KeyboardInterrupt)."""
    say = say or (lambda _m: None)
    sets = guard_sets()
    matrix = Matrix([column for column, _, _ in sets])
    for exp_id in experiments or DEFAULT_EXPERIMENTS:
        exp = load_experiment(exp_id, {})
        for column, mode, guards in sets:
            say(f"{exp_id} with {column}")
            result = run_experiment(lab, exp, mode, guards, observe=observe)
            outcome = result.journal["outcome"]
            matrix.cells.setdefault(exp_id, {})[column] = outcome["excess_shares"]
            matrix.runaway.setdefault(exp_id, {})[column] = outcome["runaway_nodes"]
            matrix.journals.setdefault(exp_id, {})[column] = str(result.path)
            if result.journal["status"] == "interrupted":
                # The run cleaned up after the Ctrl-C and wrote its journal; the matrix stops.
                raise KeyboardInterrupt
    return matrix
