"""The `cleanup` control: after a Chaos Toolkit experiment (its rollbacks done), the market is
closed, every fault undone and every load ended, whatever happened; then the run's outcome and
the venue's series are recorded in the journal, as an entry of its `extensions` named `knight`
(docs/chaostoolkit.md), which `knight report` reads."""

from __future__ import annotations

import logging
from typing import Any

from toolkit.chaos.kinds import halt_all
from toolkit.experiments.activities.load import close_loads
from toolkit.experiments.context import GUARDS_KEY
from toolkit.experiments.context import context as knight_context
from toolkit.experiments.measure import measured_outcome, venue_series
from toolkit.lab.lab import Lab
from toolkit.lab.load import stop_loads
from toolkit.lab.notes import read_notes

__all__ = ["after_experiment_control", "knight_extension"]

log = logging.getLogger("knight.chaostoolkit")
#: Seconds between two points of the recorded series (knight's runner samples as often).
INTERVAL_S = 0.5


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Make the lab safe, then record what the run did in `state` (the journal)."""
    ctx = knight_context(configuration)
    lab = ctx.lab
    errors: list[str] = []
    for what, step in (
        ("the close", lambda: close_loads(ctx)),
        ("the fault undo", lambda: halt_all(lab)),
        ("the loads' end", lambda: stop_loads(lab)),
    ):
        try:
            step()
        except Exception as exc:  # each part runs whatever happened in the one before
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
            log.error("%s: %s", what, exc)
    if state is None:
        return
    try:
        entry = knight_extension(ctx.lab, configuration or {})
    except Exception as exc:  # the journal is written all the same, saying why it has no outcome
        entry = {"name": "knight", "error": f"{type(exc).__name__}: {exc}"}
    entry["errors"] = errors
    state.setdefault("extensions", []).append(entry)


def knight_extension(lab: Lab, configuration: dict[str, Any]) -> dict[str, Any]:
    """The journal's `knight` entry: experiment, mode, guards, outcome and series."""
    notes = read_notes(lab.settings)
    started = notes.get("venue_started_at")
    return {
        "name": "knight",
        "experiment": configuration.get("knight_experiment"),
        "mode": configuration.get("knight_mode"),
        "guards_config": configuration.get(GUARDS_KEY),
        "guards": notes.get("guards"),
        "venue_started_at": started,
        "outcome": measured_outcome(lab),
        "series": venue_series(lab, started, INTERVAL_S),
    }
