"""The documented shape of a node's flags file (`/etc/smars/flags.json`, docs/protocol.md):
`{"flags": {name: {"value": bool, "meaning": non-empty string}}}` and nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["flags_file_problems"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MEANING_MAX = 64


def flags_file_problems(text: str) -> list[str]:
    """Every way `text` is not a valid flags file, one sentence each (empty when it is)."""
    try:
        doc: Any = json.loads(text)
    except ValueError as e:
        return [f"not JSON: {e}"]
    if not isinstance(doc, dict) or set(doc) != {"flags"}:
        return ['expected exactly one key, "flags"']
    flags = doc["flags"]
    if not isinstance(flags, dict):
        return ['"flags": expected an object of name -> {value, meaning}']
    problems = []
    for name, entry in flags.items():
        if not _NAME.fullmatch(name):
            problems.append(f"{name!r}: a flag name is [a-z][a-z0-9_]{{0,63}}")
        if not isinstance(entry, dict) or set(entry) != {"value", "meaning"}:
            problems.append(f"{name}: expected exactly the keys value and meaning")
            continue
        if type(entry["value"]) is not bool:
            problems.append(f"{name}.value: expected true or false, got {entry['value']!r}")
        meaning = entry["meaning"]
        if not isinstance(meaning, str) or not meaning.strip() or len(meaning) > _MEANING_MAX:
            problems.append(
                f"{name}.meaning: expected a non-empty string of at most {_MEANING_MAX} characters"
            )
    return problems
