"""The defense-in-depth matrix: per experiment, the latest run with no guard, each guard alone and
all of them. The Markdown and the HTML pages both draw it from here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from toolkit.experiments.journal import GUARDS

from .journals import JournalRun

__all__ = ["MATRIX_SETS", "Matrix", "matrix"]

#: Guard sets of the defense-in-depth matrix, in column order.
MATRIX_SETS = ("none", *GUARDS, "all")


@dataclass
class Matrix:
    """`cells[(experiment, guard set)]`: the latest run of that experiment with that guard set."""

    experiments: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], JournalRun] = field(default_factory=dict)

    def cell(self, experiment: str, guards: str) -> JournalRun | None:
        return self.cells.get((experiment, guards))


def matrix(runs: Iterable[JournalRun]) -> Matrix | None:
    """The matrix of `runs`; None until a single-guard (matrix) run exists."""
    runs = list(runs)
    if not any(r.guards in GUARDS for r in runs):
        return None
    cells: dict[tuple[str, str], JournalRun] = {}
    for run in runs:
        if run.guards not in MATRIX_SETS:
            continue
        key = (str(run.doc["experiment"]), run.guards)
        if key not in cells or run.order > cells[key].order:
            cells[key] = run
    return Matrix(sorted({e for e, _ in cells}), cells)
