"""The rules, one module each; every `Rule` subclass defined in a module of this package is a
rule of the monitor, so adding a rule means adding a file here (and its runbook, and its
Prometheus twin in monitor/prometheus/rules.yml)."""

from __future__ import annotations

import importlib
import pkgutil

from toolkit.monitor.rule import Rule

__all__ = ["default_rules", "rule_classes"]


def rule_classes() -> list[type[Rule]]:
    """Every rule class of this package, by name."""
    found: dict[str, type[Rule]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Rule)
                and obj.__module__ == module.__name__
                and getattr(obj, "name", None)
            ):
                found[obj.name] = obj
    return [found[name] for name in sorted(found)]


def default_rules() -> list[Rule]:
    """One instance of every rule, with its default thresholds."""
    return [cls() for cls in rule_classes()]
