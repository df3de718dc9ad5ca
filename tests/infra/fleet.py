"""A fleet's identity and how each node deviates from it: the release and tree hash it runs, its
config hash and its flags, compared with what the majority of the fleet (or the operator) expects.

Plain data in, plain sentences out, so the whole report fits in one assertion message and the
logic is unit-tested without a fleet.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Fleet", "NodeIdentity", "fleet_problems", "node_sort_key", "short"]

T = TypeVar("T", bound=Hashable)

RUNS = ("runs", "run")
HAS = ("has", "have")

#: A flag's state on a node: (value, meaning), or None when the node does not have the flag.
FlagState = tuple[bool, str] | None


@dataclass(frozen=True)
class NodeIdentity:
    """What one node says it runs (from its `GET /version`)."""

    node: str
    release: str | None
    tree: str | None
    config_hash: str | None
    flags: Mapping[str, tuple[bool, str]] = field(default_factory=dict)

    @classmethod
    def from_version(cls, node: str, version: Mapping[str, Any]) -> NodeIdentity:
        flags = {
            name: (bool(entry.get("value")), str(entry.get("meaning")))
            for name, entry in (version.get("flags") or {}).items()
            if isinstance(entry, Mapping)
        }
        return cls(
            node=node,
            release=version.get("release"),
            tree=version.get("tree"),
            config_hash=version.get("config_hash"),
            flags=flags,
        )

    @property
    def build(self) -> tuple[str | None, str | None]:
        return (self.release, self.tree)


@dataclass(frozen=True)
class Fleet:
    """Every node given to the suite: the identities of those that answered, and why the others
    did not (node → reason)."""

    size: int
    identities: list[NodeIdentity]
    silent: dict[str, str]

    @property
    def summary(self) -> str:
        return f"{len(self.identities)} of {self.size} nodes answered"


def node_sort_key(name: str) -> list[Any]:
    """smars-2 before smars-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def short(digest: str | None) -> str:
    return "none" if not digest else f"{digest[:8]}…"


def _build(build: tuple[str | None, str | None]) -> str:
    release, tree = build
    return f"{release or 'no release'} (tree {short(tree)})"


def _flag(name: str, state: FlagState) -> str:
    if state is None:
        return f"no {name}"
    value, meaning = state
    return f"{name}={'on' if value else 'off'} ({meaning})"


def _count(n: int) -> str:
    return f"{n} node{'s' if n != 1 else ''}"


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names, key=node_sort_key))


def _compare(
    nodes: list[NodeIdentity],
    value_of: Callable[[NodeIdentity], T],
    describe: Callable[[T], str],
    verb: tuple[str, str],
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    """One sentence per node whose value differs from the majority's (but those in `skip`,
    already named for it); with no majority, one sentence listing every group. `verb` is the
    singular and the plural form ("runs", "run")."""
    groups: dict[T, list[str]] = {}
    for n in nodes:
        groups.setdefault(value_of(n), []).append(n.node)
    if len(groups) <= 1:
        return []
    ranked = Counter({value: len(names) for value, names in groups.items()}).most_common()
    (top, top_count), (_, second_count) = ranked[0], ranked[1]
    if top_count == second_count:
        split = "; ".join(
            f"{_count(len(groups[v]))} {verb[len(groups[v]) != 1]} {describe(v)} "
            f"({_names(groups[v])})"
            for v, _ in ranked
        )
        return [f"no majority: {split}"]
    return [
        f"{name} {verb[0]} {describe(value)} while {_count(top_count)} {verb[1]} {describe(top)}"
        for value, _ in ranked[1:]
        for name in sorted(groups[value], key=node_sort_key)
        if name not in skip
    ]


def fleet_problems(
    identities: Iterable[NodeIdentity],
    silent: Mapping[str, str] | None = None,
    expect_release: str | None = None,
) -> list[str]:
    """Every way the fleet is not uniform, one sentence each, naming the node.

    `silent` maps each node that did not answer to why. `expect_release`, when given, is the
    release every node must run; otherwise only uniformity is checked.
    """
    nodes = sorted(identities, key=lambda n: node_sort_key(n.node))
    problems = [
        f"{name} did not answer: {why}"
        for name, why in sorted((silent or {}).items(), key=lambda kv: node_sort_key(kv[0]))
    ]
    seen = Counter(n.node for n in nodes)
    problems += [f"{name} answered for {count} hosts" for name, count in seen.items() if count > 1]
    unexpected = [n for n in nodes if expect_release is not None and n.release != expect_release]
    problems += [f"{n.node} runs {_build(n.build)}, expected {expect_release}" for n in unexpected]
    problems += _compare(
        nodes, lambda n: n.build, _build, RUNS, skip=frozenset(n.node for n in unexpected)
    )
    problems += _compare(nodes, lambda n: n.config_hash, lambda h: f"config {short(h)}", HAS)
    for name in sorted({f for n in nodes for f in n.flags}):
        problems += _compare(
            nodes, lambda n, f=name: n.flags.get(f), lambda s, f=name: _flag(f, s), HAS
        )
    return problems
