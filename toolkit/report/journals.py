"""`JournalRun`: one experiment journal as the report read it from disk, its path and its document,
with the keys the report groups and orders runs by; and `read_run`, which reads knight's own
journals and the Chaos Toolkit's (a `chaos run` of an exported experiment) alike.

A Chaos Toolkit journal is read through its `knight` extension entry (written by the cleanup
control: experiment, mode, guards, outcome, series) and its own runs and hypotheses, into the
shape of knight's journal (docs/journal.md), so its run gets a row, a page and a plot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.experiments.journal import JournalError, guard_label, read_journal

__all__ = ["CHAOSTOOLKIT", "KNIGHT", "RUNNERS", "JournalRun", "from_chaostoolkit", "read_run"]

#: The runners a journal may come from (its `runner`; knight's own journal has none).
KNIGHT, CHAOSTOOLKIT = "knight", "chaostoolkit"
#: A runner as the report names it.
RUNNERS = {KNIGHT: "knight experiment run", CHAOSTOOLKIT: "chaos run"}


@dataclass(frozen=True)
class JournalRun:
    """One journal read from disk: `path` (its stem names the run's page and plot) and `doc`."""

    path: Path
    doc: dict[str, Any]

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def guards(self) -> str:
        """The guard set's label: "none", "all", "atomic", "atomic+risk", ..."""
        return guard_label(self.doc.get("guards") or {})

    @property
    def runner(self) -> str:
        """Who made the run: `knight` (its own runner) or `chaostoolkit` (a `chaos run`)."""
        return str(self.doc.get("runner") or KNIGHT)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(experiment, mode, guards, runner): the report keeps the latest run per key, so a
        `chaos run` of an experiment has its row beside knight's own run of it."""
        return (str(self.doc["experiment"]), str(self.doc["mode"]), self.guards, self.runner)

    @property
    def order(self) -> tuple[str, str]:
        """Sorts runs oldest first: by start time, then by file name."""
        return (str(self.doc.get("start") or ""), self.path.name)


def read_run(path: Path) -> dict[str, Any]:
    """A journal as the report reads it: knight's own, or a Chaos Toolkit journal of an exported
    experiment read into knight's shape. JournalError says why a file is neither."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return read_journal(path)  # which says what is wrong with it
    if isinstance(doc, dict) and "chaoslib-version" in doc:
        try:
            return from_chaostoolkit(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise JournalError(
                f"{path}: a Chaos Toolkit journal knight cannot read: {exc}"
            ) from None
    return read_journal(path)


def _knight_entry(doc: dict[str, Any]) -> dict[str, Any]:
    for entry in doc.get("extensions") or []:
        if isinstance(entry, dict) and entry.get("name") == "knight" and "outcome" in entry:
            return entry
    raise ValueError("no knight outcome (was it exported by knight and run with its controls?)")


def from_chaostoolkit(doc: dict[str, Any]) -> dict[str, Any]:
    """A Chaos Toolkit journal in the shape of knight's (the `runner` key says whose it was)."""
    entry = _knight_entry(doc)
    start = _time(doc["start"])
    status = doc.get("status") or "failed"
    if status == "completed" and doc.get("deviated"):
        status = "deviated"
    config = (doc.get("experiment") or {}).get("configuration") or {}
    return {
        "experiment": entry["experiment"],
        "mode": entry["mode"],
        "guards": entry.get("guards") or {},
        "status": status,
        "deviated": bool(doc.get("deviated")),
        "start": doc["start"],
        "end": doc.get("end"),
        "duration_s": float(doc.get("duration") or 0.0),
        "timeline": _timeline(doc, start),
        "series": _series(entry, start),
        "outcome": entry["outcome"],
        "steady_state": {
            phase: _probes((doc.get("steady_states") or {}).get(phase))
            for phase in ("before", "after")
        },
        "parameters": {k: v for k, v in config.items() if not k.startswith("knight_")},
        "expectations": [],
        "expectations_met": None,
        "runner": CHAOSTOOLKIT,
    }


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _timeline(doc: dict[str, Any], start: float) -> list[dict[str, Any]]:
    """The method's and the rollbacks' runs as knight's timeline events."""
    events = []
    for section, prefix in (("run", ""), ("rollbacks", "rollback_")):
        for run in doc.get(section) or []:
            output = run.get("output") if isinstance(run.get("output"), dict) else {}
            name = output.get("activity") or run["activity"].get("name", "?")
            state = output.get("status") or run.get("status")
            kind = prefix + (name if state in ("done", "succeeded") else f"{name}_{state}")
            detail = output.get("detail") or "".join(run.get("exception") or []).strip()
            label = run["activity"].get("description") or run["activity"].get("name", "")
            events.append(
                {
                    "t": round(_time(run["start"]) - start, 3),
                    "kind": kind,
                    "node": None,
                    "detail": f"{label}: {detail}".rstrip(": ") if detail else label,
                }
            )
    return sorted(events, key=lambda e: e["t"])


def _series(entry: dict[str, Any], start: float) -> dict[str, Any]:
    """The venue's series, its times moved from the venue's start to the journal's."""
    series = dict(entry.get("series") or {})
    offset = float(entry.get("venue_started_at") or start) - start
    series["t"] = [round(t + offset, 3) for t in series.get("t", [])]
    series.setdefault("interval_s", 0.5)
    series.setdefault("child_orders_per_s", {})
    return series


def _probes(phase: dict[str, Any] | None) -> list[dict[str, Any]]:
    found = []
    for probe in (phase or {}).get("probes") or []:
        tolerance = probe["activity"].get("tolerance")
        if isinstance(tolerance, dict):
            tolerance = (
                (tolerance.get("provider") or {})
                .get("arguments", {})
                .get("tolerance", tolerance.get("range", [None, None])[-1])
            )
        found.append(
            {
                "probe": probe["activity"]["name"],
                "tolerance": tolerance,
                "value": probe.get("output"),
                "ok": bool(probe.get("tolerance_met")),
            }
        )
    return found
