"""Newline-delimited JSON framing (docs/protocol.md, "Framing"): a line splitter that enforces the
4096-byte line limit, the parser and encoders, and the structured log line of the market package."""

from __future__ import annotations

import json
import re
import socket
import sys
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ID_RE",
    "MAX_LINE",
    "SYMBOL_RE",
    "LineSplitter",
    "encode",
    "format_cents",
    "loads",
    "log_event",
]

MAX_LINE = 4096
"""Longest allowed line in bytes, including its newline."""

ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""A parent order id. Ids match it, so they can be written into a JSON string without escaping."""

SYMBOL_RE = re.compile(r"[A-Z]{1,8}")

_raw_decode = json.JSONDecoder().raw_decode
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class LineSplitter:
    """Cuts a byte stream into complete lines, decoded.

    `feed` returns the complete lines seen so far, without their newline, as str. A line over
    MAX_LINE bytes, or not UTF-8, comes out as None so the caller can answer it; an over-long line
    is never buffered beyond the limit, so a peer that sends no newline cannot grow memory. Empty
    lines are dropped. Decoding a whole batch at once is much cheaper than line by line.
    """

    __slots__ = ("_buf", "_skipping")

    def __init__(self) -> None:
        self._buf = b""
        # True while discarding an over-long line up to its newline.
        self._skipping = False

    def feed(self, data: bytes) -> list[str | None]:
        if self._buf:
            data = self._buf + data
        cut = data.rfind(b"\n")
        if cut < 0:
            if self._skipping or len(data) >= MAX_LINE:
                self._skipping = True
                self._buf = b""
            else:
                self._buf = data
            return []
        head = data[:cut]
        rest = data[cut + 1 :]
        if len(rest) >= MAX_LINE:
            # Too long already without its newline: drop it now, report it when it ends.
            self._buf = b""
            skip_next = True
        else:
            self._buf = rest
            skip_next = False
        clean = True
        try:
            parts: list[str | None] = head.decode().split("\n")  # type: ignore[assignment]
        except UnicodeDecodeError:
            parts = [_decode(p) for p in head.split(b"\n")]
            clean = False
        if self._skipping:
            # The first part is the tail of the over-long line being discarded.
            parts[0] = None
            clean = False
        self._skipping = skip_next
        # The common cases need no check per line: a batch shorter than the limit, or ASCII lines
        # all shorter than it (max over map(len) runs in C).
        if len(head) < MAX_LINE or (
            clean and head.isascii() and max(map(len, parts)) < MAX_LINE  # type: ignore[arg-type]
        ):
            return parts if clean and "" not in parts else [p for p in parts if p != ""]
        ascii_only = head.isascii()
        return [None if p is None or _too_long(p, ascii_only) else p for p in parts if p != ""]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held back."""
        return len(self._buf)


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _too_long(line: str, ascii_only: bool) -> bool:
    if len(line) >= MAX_LINE:
        return True
    # Non-ASCII characters take more than one byte: the limit is in bytes.
    return not ascii_only and len(line.encode()) >= MAX_LINE


def loads(line: str) -> Any:
    """json.loads for one protocol line, minus the per-call overhead of json.loads (encoding
    detection, whitespace skipping) on the well-formed compact lines that make up the traffic;
    anything unusual goes through json.loads itself, so the result is always the same."""
    try:
        obj, end = _raw_decode(line)
    except ValueError:
        return json.loads(line)
    if end != len(line):
        return json.loads(line)
    return obj


def encode(obj: object) -> bytes:
    """One protocol line: compact JSON and a newline."""
    return _compact(obj).encode() + b"\n"


def format_cents(cents: int) -> str:
    """A price in cents as a JSON number with exactly two decimals (no float rounding)."""
    return f"{cents // 100}.{cents % 100:02d}"


def log_event(component: str, event: str, level: str = "info", **fields: object) -> None:
    """One structured JSON log line on stdout: lifecycle events only, never per message. The shape
    the router and routerd write (smars/log.py: a copy, as the market imports nothing from smars)."""
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "component": component,
        "node": socket.gethostname(),
        "level": level,
        "event": event,
        **fields,
    }
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not take the venue down
