"""The router's counters and their Prometheus text exposition (names as in docs/protocol.md),
written by hand because the router is standard library only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metrics", "Snapshot", "render"]

REJECT_REASONS = (
    "malformed",
    "invalid",
    "duplicate",
    "killed",
    "fenced",
    "intake_paused",
    "venue_down",
    "overloaded",
    "connection_limit",
)


class Metrics:
    """Counters the intake and the admin side update (executions live in the book)."""

    def __init__(self) -> None:
        self.acked = 0
        self.rejects: Counter[str] = Counter(dict.fromkeys(REJECT_REASONS, 0))
        self.flag_errors = 0
        self.errors: Counter[str] = Counter()


@dataclass
class Snapshot:
    """Everything /metrics shows, gathered on the event loop in one go."""

    node: str
    release: str
    tree: str
    acked: int
    rejects: Mapping[str, int]
    children: Mapping[str, int]
    executions: int
    shares: int
    overfill_shares: int
    working: int
    trading_active: bool
    intake_open: bool
    venue_connected: bool
    flags: Mapping[str, Mapping[str, Any]]
    flag_errors: int
    errors: Mapping[str, int] = field(default_factory=dict)
    risk_enabled: bool = False
    risk_refused: Mapping[str, int] = field(default_factory=dict)
    risk_would_refuse: Mapping[str, int] = field(default_factory=dict)
    risk_exposure: float = 0.0
    fencing: bool = False
    fenced: bool = False
    flags_refused: int = 0
    venue_silent: bool = False
    order_connections: int = 0
    admin_connections: int = 0
    admin_polls: int = 0
    admin_evicted: int = 0


def _escape(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, Any]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    # Counters grow past what %g prints exactly; integers are written out in full.
    return str(value) if isinstance(value, int) else repr(float(value))


Sample = tuple[Mapping[str, Any], float]


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


def _by(label: str, counts: Mapping[str, int]) -> list[Sample]:
    return [({label: key}, n) for key, n in sorted(counts.items())]


def render(s: Snapshot) -> str:
    """Prometheus text exposition format 0.0.4."""
    rejected = sum(s.rejects.values())
    flags = [
        (
            {"flag": name, "meaning": f["meaning"], "code_meaning": f["code_meaning"]},
            int(f["value"]),
        )
        for name, f in sorted(s.flags.items())
    ]
    families = [
        ("smars_info", "gauge", "Identity of the running code.",
         [({"node": s.node, "release": s.release, "tree": s.tree}, 1)]),
        ("smars_parent_orders_total", "counter", "Parent orders by result.",
         [({"result": "acked"}, s.acked), ({"result": "rejected"}, rejected)]),
        ("smars_rejects_total", "counter", "Rejected parent orders by reason.",
         _by("reason", s.rejects)),
        ("smars_child_orders_total", "counter", "Child orders sent to the venue by strategy.",
         _by("strategy", s.children)),
        ("smars_executions_total", "counter", "Executions received.", [({}, s.executions)]),
        ("smars_shares_executed_total", "counter", "Shares executed.", [({}, s.shares)]),
        ("smars_overfill_shares_total", "counter",
         "Shares executed beyond their parent's quantity.", [({}, s.overfill_shares)]),
        ("smars_working_parents", "gauge", "Working parent orders.", [({}, s.working)]),
        ("smars_trading_active", "gauge", "1 unless the kill switch is on.",
         [({}, int(s.trading_active))]),
        ("smars_fencing_enabled", "gauge", "1 when the fencing guard is on.",
         [({}, int(s.fencing))]),
        ("smars_fenced", "gauge",
         "1 when the running tree is not the fleet manifest's and fencing keeps it from trading.",
         [({}, int(s.fenced))]),
        ("smars_flags_refused", "gauge",
         "Flags refused because their declared meaning is not the one this code implements.",
         [({}, s.flags_refused)]),
        ("smars_intake_open", "gauge", "1 when new orders are accepted.",
         [({}, int(s.intake_open))]),
        ("smars_venue_connected", "gauge", "1 when connected to the venue.",
         [({}, int(s.venue_connected))]),
        ("smars_flag_value", "gauge", "Flag values with declared and code meanings.", flags),
        ("smars_flag_errors_total", "counter", "Flag files that could not be used.",
         [({}, s.flag_errors)]),
        ("smars_errors_total", "counter", "Errors by kind.", _by("kind", s.errors)),
        ("smars_risk_enabled", "gauge", "1 when the risk guard enforces its limits.",
         [({}, int(s.risk_enabled))]),
        ("smars_risk_refused_total", "counter", "Child orders the risk gate refused by reason.",
         _by("reason", s.risk_refused)),
        ("smars_risk_would_refuse_total", "counter",
         "Child orders the risk gate would have refused by reason, had the guard been on.",
         _by("reason", s.risk_would_refuse)),
        ("smars_risk_exposure_dollars", "gauge",
         "Notional of the shares committed to working parent orders.",
         [({}, float(s.risk_exposure))]),
    ]  # fmt: skip
    out: list[str] = []
    for family in families + _limits(s):
        out += _family(*family)
    return "\n".join(out) + "\n"


def _limits(s: Snapshot) -> list[tuple[str, str, str, list[Sample]]]:
    """How close the node is to its limits: the venue's answers, the order port, the admin API."""
    return [
        ("smars_venue_silent", "gauge",
         "1 while child orders wait for a venue that has sent nothing for venue_silence_s.",
         [({}, int(s.venue_silent))]),
        ("smars_order_connections", "gauge", "Client connections of the order port.",
         [({}, s.order_connections)]),
        ("smars_admin_connections", "gauge", "Admin API connections being served.",
         [({}, s.admin_connections)]),
        ("smars_admin_polls", "gauge", "Admin API long polls waiting.", [({}, s.admin_polls)]),
        ("smars_admin_evicted_total", "counter",
         "Admin API connections that gave up their slot to a newer one (the API was full).",
         [({}, s.admin_evicted)]),
    ]  # fmt: skip
