"""A flag that is on where it does not mean what the person who set it said it means: the
2012 flag that meant RLP to seven servers and Power Peg to the eighth.

Fires on a node when a flag is on (`smars_flag_value` 1) and
- its declared `meaning` is not the `code_meaning` of the code that runs there, or
- the nodes where it is on give it different code meanings (a code meaning of "" is a flag the
  code does not read, e.g. a retired one: it cannot wake anything and is left out).
Critical: the next parent order may be routed to code nobody meant to run."""

from __future__ import annotations

from collections import defaultdict

from toolkit.monitor.fleet import Fleet
from toolkit.monitor.rule import Finding, Rule

__all__ = ["FlagMeaningDrift"]


class FlagMeaningDrift(Rule):
    name = "flag_meaning_drift"
    owner = "release-engineering"
    severity = "critical"
    action = "kill"

    def evaluate(self, fleet: Fleet) -> list[Finding]:
        problems: dict[str, list[str]] = defaultdict(list)
        code_meanings: dict[str, dict[str, str]] = defaultdict(dict)  # flag -> node -> meaning
        for node in fleet.up():
            assert node.latest is not None
            for labels, value in node.latest.all("smars_flag_value"):
                if value != 1:
                    continue
                flag = labels.get("flag", "")
                meaning, code = labels.get("meaning", ""), labels.get("code_meaning", "")
                if code:
                    code_meanings[flag][node.name] = code
                    if meaning != code:
                        problems[node.name].append(
                            f"{flag} is on, declared {meaning!r}, this code runs {code!r}"
                        )
        for flag, by_node in sorted(code_meanings.items()):
            if len(set(by_node.values())) > 1:
                spread = " vs ".join(
                    f"{meaning} on {', '.join(sorted(n for n, m in by_node.items() if m == meaning))}"
                    for meaning in sorted(set(by_node.values()))
                )
                for node in by_node:
                    problems[node].append(f"{flag} is on and means {spread}")
        return [
            Finding(node, f"{node}: " + "; ".join(dict.fromkeys(why)), float(len(why)))
            for node, why in sorted(problems.items())
        ]
