"""Drive parent orders into the routers from the client container (on the lab network, so the
load does not go through Docker's userland proxy) and read back the load generator's accounting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import LabError

from .lab import Lab

__all__ = ["LoadResult", "LoadSpec", "run_echo", "run_load", "stop_load"]


#: A load's parent-order id prefix: what `stop_load` finds its load generator by.
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class LoadSpec:
    """What to send: rate in parent orders/s over all targets (0 = as fast as the window allows)."""

    nodes: tuple[str, ...] = ()
    rate: float = 200.0
    duration_s: float | None = 5.0
    count: int | None = None
    rlp_share: float = 0.0
    qty: int = 100
    window: int = 256
    drain_s: float = 5.0
    seed: int = 1
    prefix: str | None = None

    def argv(self, targets: list[str]) -> list[str]:
        args = ["loadgen", "--rate", str(self.rate), "--rlp-share", str(self.rlp_share)]
        args += ["--qty", str(self.qty), "--window", str(self.window), "--drain", str(self.drain_s)]
        args += ["--seed", str(self.seed), "--progress"]
        if self.count is not None:
            args += ["--count", str(self.count)]
        elif self.duration_s is not None:
            args += ["--duration", str(self.duration_s)]
        if self.prefix:
            args += ["--prefix", self.prefix]
        for t in targets:
            args += ["--target", t]
        return args


@dataclass
class LoadResult:
    """The load generator's account of every parent order it sent."""

    sent: int
    acked: int
    filled: int
    overfilled: int
    cancelled: int
    rejected: int
    working: int
    unanswered: int
    retries: int
    excess_shares: int
    orders_per_s: float
    elapsed_s: float
    per_target: dict[str, dict[str, int]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LoadResult:
        keys = (
            "sent",
            "acked",
            "filled",
            "overfilled",
            "cancelled",
            "rejected",
            "working",
            "unanswered",
        )
        return cls(
            **{k: int(doc[k]) for k in keys},
            retries=int(doc.get("retries", 0)),
            excess_shares=int(doc.get("excess_shares", 0)),
            orders_per_s=float(doc.get("orders_per_s", 0.0)),
            elapsed_s=float(doc.get("elapsed_s", 0.0)),
            per_target=doc.get("per_target", {}),
            raw=doc,
        )

    @property
    def accounted(self) -> bool:
        """Every parent order ended in exactly one state."""
        return (
            self.sent
            == self.filled + self.cancelled + self.rejected + self.working + self.unanswered
        )


def _exec_json(
    lab: Lab, argv: list[str], on_progress: Callable[[dict], None] | None
) -> dict[str, Any]:
    def stderr(line: str) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = {"message": line}
        if on_progress:
            on_progress(doc)

    code, out = lab.engine.exec_stream(lab.client_container(), ["knight-node", *argv], stderr)
    if code != 0:
        raise LabError(
            f"{argv[0]} in the client container exited {code}: {out.decode(errors='replace')[-500:]}"
        )
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise LabError(
            f"{argv[0]} printed no result: {out.decode(errors='replace')[-500:]}"
        ) from None


def run_load(
    lab: Lab, spec: LoadSpec, on_progress: Callable[[dict], None] | None = None
) -> LoadResult:
    """Run the load generator against `spec.nodes` (all nodes when empty) and return its account."""
    nodes = list(spec.nodes) or lab.settings.node_names
    for n in nodes:
        lab.check_node(n)
    targets = [f"{n}:{lab.settings.order_port}" for n in nodes]
    return LoadResult.from_json(_exec_json(lab, spec.argv(targets), on_progress))


def stop_load(lab: Lab, prefix: str) -> bool:
    """Ask the load generator that runs with `prefix` to end its send phase (SIGTERM): it then
    drains and reports as if its time were up. True when one was running."""
    if not _PREFIX.fullmatch(prefix):
        raise LabError(f"not a load prefix: {prefix!r}")
    pattern = f"market[.]loadgen .*--prefix {prefix}( |$)"
    code, _ = lab.engine.exec(lab.client_container(), ["pkill", "-TERM", "-f", pattern])
    return code == 0


def run_echo(lab: Lab, count: int = 200_000, window: int = 256) -> dict[str, Any]:
    """The newline-JSON echo floor, measured in the client container (same Python as the load)."""
    return _exec_json(lab, ["echo", "--count", str(count), "--window", str(window)], None)
