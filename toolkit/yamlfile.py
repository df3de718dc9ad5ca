"""Load YAML while remembering where each value came from, so an error can name file and line.

Every YAML file knight reads (the release catalog, the flag registry, experiments) goes through
`load_yaml`, which also refuses what no such file needs and a hostile one could use: anchors and
aliases (a few lines of nested aliases expand to billions of values, "billion laughs") and
numbers that are not finite (`.nan`, `.inf`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["Mapping", "load_yaml", "where"]


class Mapping(dict):
    """A dict that knows the line of itself and of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        # Refused before the node is built: an alias is never followed, so a file of nested
        # aliases costs no more to refuse than to read.
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ConfigError(
                "YAML anchors and aliases (&name, *name) are not allowed: write the value out",
                None,
                event.start_mark.line + 1,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Mapping:
    loader.flatten_mapping(node)
    result = Mapping()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(
                "a mapping key must be a plain value", None, key_node.start_mark.line + 1
            ) from None
        if key in result:
            raise ConfigError(f"duplicate key {key!r}", None, key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:  # 2003-02-30 looks like a date to YAML but is none
        raise ConfigError(
            f"invalid date {node.value}: {exc}", None, node.start_mark.line + 1
        ) from None


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if not math.isfinite(value):  # .nan, .inf, and 1.0e+999 that overflows to inf
        raise ConfigError(f"{node.value}: expected a finite number", None, node.start_mark.line + 1)
    return value


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml(path: Path | str) -> Any:
    """Parse a YAML file; any problem becomes a ConfigError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", str(path)) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except ConfigError as exc:
        raise ConfigError(exc.message, str(path), exc.line) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(f"invalid YAML: {exc.problem}", str(path), line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", str(path)) from None


def where(mapping: Any, key: Any = None) -> int | None:
    """The line of `key` in `mapping` (or of the mapping itself), when known."""
    if isinstance(mapping, Mapping):
        return mapping.line_of(key) if key is not None else mapping.line
    return None
