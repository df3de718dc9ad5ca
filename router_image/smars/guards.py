"""Which of the router-side guards are on (/etc/smars/guards.json), re-read with the flags.

`{"fencing": bool, "flags": bool, "risk": bool}`; every key optional. An absent file means
none: the router then behaves as the 2012 fleet did. A bad file keeps the last good switches
and reports the error, like the flags file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["ROUTER_GUARDS", "GuardStore", "Guards", "parse_guards"]

#: The guards that act inside the router; the others (atomic, monitor, rollback) act in the
#: toolkit and the playbooks.
ROUTER_GUARDS = ("fencing", "flags", "risk")


@dataclass(frozen=True)
class Guards:
    fencing: bool = False
    flags: bool = False
    risk: bool = False

    def to_json(self) -> dict[str, bool]:
        return asdict(self)


def parse_guards(data: bytes) -> Guards:
    """The switches in `data`; ValueError naming the problem on anything else."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object of guard name -> true/false")
    unknown = sorted(set(doc) - set(ROUTER_GUARDS))
    if unknown:
        raise ValueError(f"unknown guard {unknown[0]!r} (known: {', '.join(ROUTER_GUARDS)})")
    for name, value in doc.items():
        if type(value) is not bool:
            raise ValueError(f"{name}: expected true or false")
    return replace(Guards(), **doc)


class GuardStore:
    """The switches in effect and the last error reading them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.guards = Guards()
        self.error: str | None = None

    def load(self) -> bool:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.guards, self.error = Guards(), None
            return True
        except OSError as e:
            self.error = f"{self.path}: cannot read: {e.strerror}"
            return False
        try:
            self.guards = parse_guards(data)
        except ValueError as e:
            self.error = f"{self.path}: {e}"
            return False
        self.error = None
        return True

    def snapshot(self) -> dict[str, Any]:
        return {**self.guards.to_json(), "error": self.error}
