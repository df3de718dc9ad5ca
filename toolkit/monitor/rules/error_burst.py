"""A node logging errors in a burst (`smars_errors_total` of every kind plus
`smars_flag_errors_total`, at least `threshold` within `window_s`): the analogue of the 97
"Power Peg disabled" e-mails of 8:01 a.m. in 2012, e.g. a flag whose declared meaning is not
its code's. A warning that pages the router's on-call; it does not stop trading by itself."""

from __future__ import annotations

from toolkit.monitor.fleet import Fleet, Sample
from toolkit.monitor.rule import Finding, Rule

__all__ = ["ErrorBurst"]


def _errors(sample: Sample) -> float:
    return sample.sum("smars_errors_total") + sample.sum("smars_flag_errors_total")


class ErrorBurst(Rule):
    name = "error_burst"
    owner = "smars-oncall"
    severity = "warning"
    action = "page"

    def __init__(self, threshold: int = 3, window_s: float = 60.0) -> None:
        self.threshold = threshold
        self.window_s = window_s

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        found = []
        for node in fleet.up():
            count, _ = node.increase(_errors, self.window_s)
            if count >= self.threshold:
                assert node.latest is not None
                kinds = ", ".join(
                    f"{labels.get('kind')}: {value:.0f}"
                    for labels, value in node.latest.all("smars_errors_total")
                    if value
                )
                found.append(
                    Finding(
                        node.name,
                        f"{node.name}: {count:.0f} errors in {self.window_s:g} s "
                        f"(totals: {kinds or 'flag file errors'})",
                        count,
                    )
                )
        return found
