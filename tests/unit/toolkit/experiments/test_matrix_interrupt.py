"""A Ctrl-C during one cell of the matrix ends that run as any run ends, then the matrix."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit.experiments import matrix


def test_an_interrupted_cell_ends_the_matrix(monkeypatch):
    ran: list[str] = []

    def run_experiment(lab, exp, mode, guards, observe=None):
        ran.append(guards.label())
        status = "interrupted" if len(ran) == 2 else "completed"
        outcome = {"excess_shares": 0, "runaway_nodes": []}
        return SimpleNamespace(journal={"status": status, "outcome": outcome}, path=Path("j"))

    monkeypatch.setattr(matrix, "run_experiment", run_experiment)
    monkeypatch.setattr(matrix, "load_experiment", lambda exp_id, sets: exp_id)
    with pytest.raises(KeyboardInterrupt):
        matrix.run_matrix(None, ["skipped_node", "rollback"])  # type: ignore[arg-type]
    assert ran == ["none", "atomic"]
