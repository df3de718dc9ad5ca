"""The contract of a rule: a name, an owner, a severity, a runbook and an action, and an
`evaluate` that names the nodes where its condition holds now. The monitor does the rest: the
hold (`for_s`), de-duplication, recording and acting. A rule is one file in `rules/`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from .alert import ACTIONS, SEVERITIES, Action, Severity
from .fleet import Fleet

__all__ = ["Finding", "Rule", "odd_ones_out"]


@dataclass(frozen=True)
class Finding:
    """The condition holds on `node` now; `value` is the number that crossed the line."""

    node: str
    summary: str
    value: float


class Rule:
    """Base of every rule. Subclasses set the class attributes and implement `evaluate`."""

    name: ClassVar[str]
    owner: ClassVar[str]
    severity: ClassVar[Severity]
    action: ClassVar[Action]
    #: How long the condition must hold before the alert fires (Prometheus `for:`).
    for_s: ClassVar[float] = 0.0

    @property
    def runbook(self) -> str:
        return f"docs/runbooks/{self.name}.md"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        name = getattr(cls, "name", None)
        if not name:
            return
        if cls.severity not in SEVERITIES or cls.action not in ACTIONS:
            raise TypeError(f"rule {name}: severity {cls.severity!r}, action {cls.action!r}")
        # Critical means the fleet stops: the contract the monitor guard is measured by.
        if (cls.severity == "critical") != (cls.action == "kill"):
            raise TypeError(f"rule {name}: critical rules kill, and only they do")

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def odd_ones_out(groups: Mapping[str, Hashable]) -> list[str]:
    """Nodes outside the one strictly largest group (every node when the largest is tied;
    nobody when all agree). `groups` maps node -> the thing they should agree on."""
    counts = Counter(groups.values())
    if len(counts) < 2:
        return []
    (top, n), (_, runner_up) = counts.most_common(2)
    if n == runner_up:
        return sorted(groups)
    return sorted(node for node, key in groups.items() if key != top)
