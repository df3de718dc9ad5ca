"""The release catalog (`router_image/releases.yaml`): the one module that reads it.

A release names the strategies its build contains and the meaning its code gives each flag it
reads. The catalog is data for the builder, the lab, the flag registry and the rollback planner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ConfigError, ReleaseError
from toolkit.yamlfile import load_yaml, where

__all__ = ["FLAG_NAME", "VERSION", "Catalog", "Release", "load_catalog"]

# The toolkit's one home for these two patterns: the flag registry and the experiment schema
# import them from here. (The router and tests/infra keep their own copy of the name pattern on
# purpose, for they import nothing from the toolkit: docs/protocol.md, "Copies kept on purpose".)
#: A release version: MAJOR.MINOR.PATCH.
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
#: A flag name, also the shape of a strategy name: lower case, digits and `_`, at most 64.
FLAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class Release:
    """One version of the router: what it contains and what its flags mean."""

    version: str
    summary: str
    strategies: tuple[str, ...]
    flags: dict[str, str] = field(default_factory=dict)
    retired: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "summary": self.summary,
            "strategies": list(self.strategies),
            "flags": dict(self.flags),
            "retired": list(self.retired),
        }


@dataclass(frozen=True)
class Catalog:
    """Every release, in file order, and the baseline the lab starts from."""

    path: Path
    baseline: str
    releases: dict[str, Release]

    def get(self, version: str) -> Release:
        try:
            return self.releases[version]
        except KeyError:
            known = ", ".join(self.releases)
            raise ReleaseError(f"unknown release {version!r} (known: {known})") from None

    @property
    def versions(self) -> list[str]:
        return list(self.releases)


def _names(value: object, what: str, path: str, line: int | None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of names", path, line)
    for name in value:
        if not FLAG_NAME.fullmatch(name):
            raise ConfigError(f"{what}: {name!r} is not a valid name", path, line)
    if len(set(value)) != len(value):
        raise ConfigError(f"{what}: a name appears twice", path, line)
    return tuple(value)


def _release(
    version: str, spec: object, path: str, line: int | None, strategies_known: set[str]
) -> Release:
    if not VERSION.fullmatch(version):
        raise ConfigError(
            f"release {version!r}: a version is MAJOR.MINOR.PATCH (quote it)", path, line
        )
    if not isinstance(spec, dict):
        raise ConfigError(f"release {version}: expected a mapping", path, line)
    unknown = set(spec) - {"summary", "strategies", "flags", "retired"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"release {version}: unknown key {key!r}", path, where(spec, key))
    summary = spec.get("summary", "")
    if not isinstance(summary, str):
        raise ConfigError(f"release {version}: summary must be text", path, where(spec, "summary"))
    strategies = _names(
        spec.get("strategies"), f"release {version}: strategies", path, where(spec, "strategies")
    )
    if "sor" not in strategies:
        raise ConfigError(
            f"release {version}: every build contains 'sor'", path, where(spec, "strategies")
        )
    missing = [s for s in strategies if s not in strategies_known]
    if missing:
        raise ConfigError(
            f"release {version}: no strategy module for {missing[0]!r} in router_image/smars/strategies",
            path,
            where(spec, "strategies"),
        )
    flags = spec.get("flags", {}) or {}
    if not isinstance(flags, dict):
        raise ConfigError(
            f"release {version}: flags must map a flag name to its meaning",
            path,
            where(spec, "flags"),
        )
    for name, meaning in flags.items():
        line_of = where(flags, name)
        if not isinstance(name, str) or not FLAG_NAME.fullmatch(name):
            raise ConfigError(
                f"release {version}: {name!r} is not a valid flag name", path, line_of
            )
        if meaning not in strategies:
            raise ConfigError(
                f"release {version}: flag {name} means {meaning!r}, which this build does not contain",
                path,
                line_of,
            )
    retired = _names(
        spec.get("retired", []), f"release {version}: retired", path, where(spec, "retired")
    )
    both = set(retired) & set(flags)
    if both:
        raise ConfigError(
            f"release {version}: {sorted(both)[0]} is both read and retired",
            path,
            where(spec, "retired"),
        )
    return Release(version, summary.strip(), strategies, dict(flags), retired)


def known_strategies(router_source: Path) -> set[str]:
    """Strategy modules present in the router's source tree."""
    folder = router_source / "strategies"
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def load_catalog(path: Path, router_source: Path) -> Catalog:
    """Read and validate the catalog; a mistake raises ConfigError with the file and line."""
    doc = load_yaml(path)
    spath = str(path)
    if not isinstance(doc, dict):
        raise ConfigError("expected a mapping with 'baseline' and 'releases'", spath, 1)
    unknown = set(doc) - {"baseline", "releases"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r}", spath, where(doc, key))
    releases_doc = doc.get("releases")
    if not isinstance(releases_doc, dict) or not releases_doc:
        raise ConfigError("'releases' must map versions to releases", spath, where(doc, "releases"))
    strategies_known = known_strategies(router_source)
    releases = {}
    for version, spec in releases_doc.items():
        version = str(version)
        releases[version] = _release(
            version, spec, spath, where(releases_doc, version), strategies_known
        )
    baseline = doc.get("baseline")
    if not isinstance(baseline, str) or baseline not in releases:
        raise ConfigError(
            f"baseline {baseline!r} is not one of the releases", spath, where(doc, "baseline")
        )
    return Catalog(path, baseline, releases)
