"""A knight probe's tolerance as a Chaos Toolkit tolerance probe: chaoslib calls `holds` with the
probe's output as `value`, and it answers as knight's own runner would (`model.Probe.holds`)."""

from __future__ import annotations

from typing import Any

from toolkit.experiments.model import Probe

__all__ = ["holds"]


def holds(probe: str, tolerance: Any, value: Any = None) -> bool:
    """Whether `value`, read by the knight probe `probe`, is within `tolerance` (chaoslib adds
    `value` when it runs the tolerance; it has a default so `chaos validate` accepts the call)."""
    return Probe(probe, tolerance).holds(value)
