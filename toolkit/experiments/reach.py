"""Whether an experiment can run on the fleet it is given: a fleet reached through an inventory
takes only the steps that ssh and HTTP can do, and one that it cannot take stops the run before
anything runs (ConfigError, exit 2), naming the step."""

from __future__ import annotations

from toolkit.chaos.kinds import refusal
from toolkit.errors import ConfigError

from .model import Experiment

__all__ = ["check_reach"]


def check_reach(experiment: Experiment) -> None:
    """ConfigError naming the first step of `experiment` that a fleet reached through an
    inventory cannot take."""
    for part, steps in (("step", experiment.method), ("rollback", experiment.rollbacks)):
        for number, step in enumerate(steps, 1):
            kind = step.args.get("kind") if step.name == "fault" else None
            why = refusal(kind) if isinstance(kind, str) else None
            if why is not None:
                raise ConfigError(
                    f"{part} {number} (fault {kind}): {why}", str(experiment.path), step.line
                )
