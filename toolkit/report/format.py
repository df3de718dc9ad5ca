"""Numbers and text for people: counts, dollars and durations as the report writes them, and the
Markdown table (and its cells) every page is built from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from toolkit.settings import node_key

__all__ = [
    "detect_text",
    "fmt_int",
    "fmt_seconds",
    "fmt_usd",
    "md_cell",
    "md_table",
    "runaway_text",
    "text_cell",
    "unread_alerts",
]


def fmt_int(value: float | None) -> str:
    """1234567 -> 1,234,567."""
    if value is None:
        return "—"
    return f"{round(value):,}"


def fmt_usd(value: float | None) -> str:
    """460000000 -> $460M, 1234567 -> $1.2M, 950 -> $950, -1500 -> -$1.5K."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= size:
            scaled = amount / size
            text = f"{scaled:.1f}" if scaled < 100 else f"{scaled:.0f}"
            return f"{sign}${text.removesuffix('.0')}{unit}"
    return f"{sign}${amount:,.0f}"


def fmt_seconds(value: float | None, never: str = "never") -> str:
    """2.34 -> 2.3 s, 75 -> 1 min 15 s, None -> never."""
    if value is None:
        return never
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def runaway_text(outcome: Mapping[str, Any]) -> str:
    """A run outcome's runaway nodes: "none", "smars-8", or "all 8" when every node ran away."""
    nodes = sorted(outcome.get("runaway_nodes") or [], key=node_key)
    fleet = outcome.get("fleet_end") or {}
    if not nodes:
        return "none"
    if len(nodes) > 1 and set(nodes) == set(fleet):
        return f"all {len(nodes)}"
    return ", ".join(nodes)


def unread_alerts(doc: Mapping[str, Any]) -> int | None:
    """How many alerts of a run went to the mailbox nobody reads: its `alert` events when the
    monitor guard was off (the monitor then only writes e-mails, docs/journal.md); None when the
    guard was on and its alerts acted."""
    if (doc.get("guards") or {}).get("monitor"):
        return None
    return sum(1 for e in doc.get("timeline") or [] if e.get("kind") == "alert")


def detect_text(doc: Mapping[str, Any], never: str = "never") -> str:
    """A run's time to detect: "0.3 s" when an alert acted on the runaway; "never (alerted at
    0.0 s, 12 e-mails unread)" when it went to the mailbox nobody reads, as in 2012; `never` when
    no alert fired."""
    detected = (doc.get("outcome") or {}).get("detected_at_s")
    unread = unread_alerts(doc)
    if detected is None or unread is None:
        return fmt_seconds(detected, never)
    mails = f"{unread} e-mail{'' if unread == 1 else 's'} unread" if unread else "unread"
    return f"never (alerted at {fmt_seconds(detected)}, {mails})"


# -- Markdown -------------------------------------------------------------------------------------
def text_cell(value: Any) -> str:
    """One table cell as text: None -> —, booleans as yes/no, lists and dicts spelled out."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "—"
    return str(value)


def md_cell(value: Any) -> str:
    """One Markdown table cell: `text_cell`, pipes escaped, on one line."""
    return text_cell(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A Markdown table, one line per list item: the header, its rule, then the rows."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines
