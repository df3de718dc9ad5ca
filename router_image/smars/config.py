"""Node settings from /etc/smars/router.json: every key optional, each one checked against its
rule, so a typo or a wrong type stops the node at startup with the key and the file named."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["DEFAULT_PATH", "Config", "load_config"]

DEFAULT_PATH = "/etc/smars/router.json"

_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class Config:
    """The effective settings of one node (file values over defaults, then command-line overrides)."""

    node: str
    bind: str = "0.0.0.0"
    order_port: int = 7001
    admin_port: int = 8001
    venue: str = "venue:9000"
    slice_qty: int = 100
    peg_interval_ms: int = 20
    peg_max_children_per_s: int = 500
    max_working: int = 20000
    #: Working parents one order connection may have (None: a quarter of `max_working`), so
    #: that no single client takes every slot; more are rejected `connection_limit`.
    max_working_per_connection: int | None = None
    #: Order connections served at once; one more is told `closing` and closed.
    max_order_connections: int = 256
    #: An order connection silent this long with no working parent is closed.
    order_idle_s: float = 60.0
    #: /health says the venue is silent (503) when children have waited this long for it
    #: and it has sent nothing meanwhile.
    venue_silence_s: float = 5.0
    drain_timeout_s: float = 2.0
    flags_path: str = "/etc/smars/flags.json"
    fleet_path: str = "/etc/smars/fleet.json"
    guards_path: str = "/etc/smars/guards.json"
    state_path: str = "/var/lib/smars/state.json"
    pid_path: str = "/run/smars/router.pid"
    current_path: str = "/opt/smars/current"
    #: A guarded flip leaves this marker until the fleet is verified; a switch still unconfirmed
    #: `switch_confirm_s` after it was made is undone by the node itself (commit-confirmed).
    pending_path: str = "/var/lib/smars/switch.pending"
    switch_confirm_s: float = 10.0
    #: A warm switch's standby: how long arming waits for it to be ready, and how long it is
    #: kept when no switch comes.
    standby_ready_s: float = 8.0
    standby_keep_s: float = 60.0
    #: The risk gate's limits (enforced while guards.json says "risk": true; sizing in
    #: docs/protocol.md): child orders per second, open exposure in dollars, and the price of
    #: a symbol before its first execution.
    risk_max_child_per_s: int = 500_000
    risk_max_notional: float = 250_000_000.0
    risk_reference_price: float = 100.0

    @property
    def working_per_connection(self) -> int:
        """The effective cap of working parents per order connection."""
        if self.max_working_per_connection is not None:
            return self.max_working_per_connection
        return max(1, self.max_working // 4)

    @property
    def venue_address(self) -> tuple[str, int]:
        host, _, port = self.venue.rpartition(":")
        return host, int(port)

    def config_hash(self) -> str:
        """SHA-256 of the canonical JSON of every setting but `node`, so a uniform fleet has one."""
        settings = asdict(self)
        del settings["node"]
        canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        # bool is an int subclass; true is not a port or a quantity.
        if type(value) is not int:
            raise ValueError(f"expected an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"expected {low}..{high}, got {value}")
        return value

    return check


def _seconds(value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"expected a number of seconds, got {_kind(value)}")
    if not 0 <= value <= 600:
        raise ValueError(f"expected 0..600 seconds, got {value}")
    return float(value)


def _positive_seconds(value: Any) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise ValueError(f"expected more than 0 seconds, got {value}")
    return seconds


def _dollars(high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ValueError(f"expected a number of dollars, got {_kind(value)}")
        if not 0 < value <= high:
            raise ValueError(f"expected more than 0 and at most {high:g} dollars, got {value}")
        return float(value)

    return check


def _text(value: Any) -> str:
    if type(value) is not str or not value:
        raise ValueError(f"expected a non-empty string, got {_kind(value)}")
    return value


def _node(value: Any) -> str:
    if type(value) is not str or not _NODE_NAME.fullmatch(value):
        raise ValueError("expected 1-64 characters of A-Z a-z 0-9 _ . - (starting alphanumeric)")
    return value


def _venue(value: Any) -> str:
    text = _text(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    return text


_RULES: Mapping[str, Callable[[Any], Any]] = {
    "node": _node,
    "bind": _text,
    "order_port": _integer(0, 65535),  # 0: any free port (tests); the bound port is logged
    "admin_port": _integer(0, 65535),
    "venue": _venue,
    "slice_qty": _integer(1, 1_000_000),
    "peg_interval_ms": _integer(1, 60_000),
    "peg_max_children_per_s": _integer(1, 1_000_000),
    "max_working": _integer(1, 10_000_000),
    "max_working_per_connection": _integer(1, 10_000_000),
    "max_order_connections": _integer(1, 65_536),
    "order_idle_s": _positive_seconds,
    "venue_silence_s": _positive_seconds,
    "drain_timeout_s": _seconds,
    "flags_path": _text,
    "fleet_path": _text,
    "guards_path": _text,
    "state_path": _text,
    "pid_path": _text,
    "current_path": _text,
    "pending_path": _text,
    "switch_confirm_s": _seconds,
    "standby_ready_s": _seconds,
    "standby_keep_s": _seconds,
    "risk_max_child_per_s": _integer(1, 100_000_000),
    "risk_max_notional": _dollars(1e15),
    "risk_reference_price": _dollars(1e6),
}


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _read(path: Path, required: bool) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: not found") from None
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {_kind(doc)}")
    return doc


def _check(source: str, values: Mapping[str, Any]) -> dict[str, Any]:
    checked = {}
    for key, value in values.items():
        rule = _RULES.get(key)
        if rule is None:
            known = ", ".join(sorted(_RULES))
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
        try:
            checked[key] = rule(value)
        except ValueError as e:
            raise ConfigError(f"{source}: {key}: {e}") from None
    return checked


def load_config(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read router.json (`path`, else $SMARS_CONFIG, else the default) and apply `overrides`.

    A file named explicitly must exist; the default file may be absent (all defaults).
    """
    explicit = path or os.environ.get("SMARS_CONFIG")
    source = Path(explicit or DEFAULT_PATH)
    values = _check(str(source), _read(source, required=bool(explicit)))
    values.update(_check("command line", overrides or {}))
    node = values.pop("node", None) or os.environ.get("SMARS_NODE") or socket.gethostname()
    try:
        node = _node(node)
    except ValueError as e:
        raise ConfigError(f"node name {node!r}: {e}") from None
    config = replace(Config(node=node), **values)
    per, total = config.max_working_per_connection, config.max_working
    if per is not None and per >= total > 1:
        raise ConfigError(
            f"{source}: max_working_per_connection: expected less than max_working ({total}), "
            f"got {per}: one connection could take every working slot"
        )
    return config
