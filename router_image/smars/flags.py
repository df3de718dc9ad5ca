"""Feature flags from /etc/smars/flags.json, each with a value and a declared meaning, set
beside the meaning this code gives the flag (release.json). A bad file never takes effect:
the last good flags stay and the error is reported. With the flag-registry guard enforced, a
flag whose declared meaning is not the code's is refused: it routes nothing, as if it were off."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SmarsError

__all__ = ["Flag", "FlagError", "FlagStore", "parse_flags"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MEANING_MAX = 64


class FlagError(SmarsError):
    """The flags file is missing, unreadable or not in the documented shape."""


@dataclass(frozen=True)
class Flag:
    name: str
    value: bool
    meaning: str  # what the person who set it says it means


def parse_flags(data: bytes) -> dict[str, Flag]:
    """`{"flags": {name: {"value": bool, "meaning": str}}}` -> name -> Flag; FlagError on
    anything else."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise FlagError("not UTF-8") from None
    except (ValueError, RecursionError) as e:
        raise FlagError(f"not JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"flags"} or not isinstance(doc["flags"], dict):
        raise FlagError('expected {"flags": {name: {"value": ..., "meaning": ...}}}')
    return {name: _flag(name, entry) for name, entry in doc["flags"].items()}


def _flag(name: str, entry: Any) -> Flag:
    if not _NAME.fullmatch(name):
        raise FlagError(f"flag name {name[:70]!r}: expected [a-z][a-z0-9_]{{0,63}}")
    if not isinstance(entry, dict) or set(entry) != {"value", "meaning"}:
        raise FlagError(f"{name}: expected exactly the keys value and meaning")
    value, meaning = entry["value"], entry["meaning"]
    if type(value) is not bool:
        raise FlagError(f"{name}.value: expected true or false")
    if type(meaning) is not str or not meaning.strip() or len(meaning) > _MEANING_MAX:
        raise FlagError(
            f"{name}.meaning: expected a non-blank string of 1-{_MEANING_MAX} characters"
        )
    return Flag(name, value, meaning)


class FlagStore:
    """The flags in effect on this node and the last error reading them."""

    def __init__(self, path: str | Path, code_meanings: Mapping[str, str]) -> None:
        self.path = Path(path)
        self.code_meanings = dict(code_meanings)
        self.flags: dict[str, Flag] = {}
        self.error: str | None = None

    def load(self) -> bool:
        """Re-read the file; on any error keep the last good flags and set `error`."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.error = f"{self.path}: not found"
            return False
        except OSError as e:
            self.error = f"{self.path}: cannot read: {e.strerror}"
            return False
        try:
            self.flags = parse_flags(data)
        except FlagError as e:
            self.error = f"{self.path}: {e}"
            return False
        self.error = None
        return True

    def code_meaning(self, name: str) -> str | None:
        return self.code_meanings.get(name)

    def mismatches(self) -> list[Flag]:
        """Flags this code reads whose declared meaning is not the one the code implements."""
        return [
            f
            for f in self.flags.values()
            if f.name in self.code_meanings and f.meaning != self.code_meanings[f.name]
        ]

    def refused(self, enforce: bool = True) -> list[Flag]:
        """Flags the guard refuses: with `enforce`, every mismatch (on or off, so the operator
        sees it before turning it on); without, none."""
        return self.mismatches() if enforce else []

    def strategy_for_rlp(self, available: Collection[str], enforce: bool = False) -> str | None:
        """The strategy an enabled flag means in this code, or None (RLP orders go to sor).

        The code's meaning decides, not the declared one: that is how a reused flag woke
        Power Peg in 2012. With `enforce`, a refused flag counts as off, so a declared meaning
        this code does not implement can never start a strategy.
        """
        refused = {f.name for f in self.refused(enforce)}
        for name in sorted(self.flags):
            meaning = self.code_meanings.get(name)
            if self.flags[name].value and meaning in available and name not in refused:
                return meaning
        return None

    def snapshot(self, enforce: bool = False) -> dict[str, dict[str, Any]]:
        """Each flag with its declared and code meaning; with `enforce`, also whether it is
        refused."""
        refused = {f.name for f in self.refused(enforce)}
        view = {}
        for name, f in sorted(self.flags.items()):
            entry: dict[str, Any] = {
                "value": f.value,
                "meaning": f.meaning,
                "code_meaning": self.code_meaning(name),
            }
            if enforce:
                entry["refused"] = name in refused
            view[name] = entry
        return view
