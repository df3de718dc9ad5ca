"""The seeded deploy-fault campaign: a guarded deploy with one chaos fault landing on one node
at one phase, many times over; afterwards the fleet must run one release and no order may be
lost. The faults themselves are in toolkit/chaos/.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.deploy.ansible import TaskEvent
from toolkit.deploy.operations import deploy
from toolkit.errors import ConfigError
from toolkit.interrupts import deferred
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadSpec, run_load

from .kinds import FAULTS, halt_all, make, over_inventory

__all__ = [
    "PHASES",
    "CampaignResult",
    "Schedule",
    "run_campaign",
    "run_schedule",
]


#: Faults that freeze the node rather than kill it, and how long they last.
STALLS = ("pause", "delay")
STALL_S = 8.0

#: Where in a guarded deploy a fault can land (the phase whose first task starts it).
PHASES = ("preflight", "stage", "flip", "verify")


@dataclass(frozen=True)
class Schedule:
    fault: str
    node: str
    phase: str

    def __str__(self) -> str:
        return f"{self.fault} {self.node} at {self.phase}"


@dataclass
class ScheduleResult:
    schedule: Schedule
    injected: bool
    status: str
    releases: dict[str, str | None]
    uniform: bool
    lost_orders: int
    error: str | None

    @property
    def ok(self) -> bool:
        """The guarantee held: one release everywhere afterwards, and no order lost."""
        return self.uniform and self.lost_orders == 0


@dataclass
class CampaignResult:
    seed: int
    schedules: list[ScheduleResult] = field(default_factory=list)
    #: Ctrl-C ended it early: `schedules` holds those that ran to their end.
    interrupted: bool = False

    @property
    def mixed(self) -> int:
        return sum(not r.uniform for r in self.schedules)

    @property
    def lost_orders(self) -> int:
        return sum(r.lost_orders for r in self.schedules)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "schedules": len(self.schedules),
            "interrupted": self.interrupted,
            "mixed_end_states": self.mixed,
            "lost_orders": self.lost_orders,
            "statuses": {
                s: sum(r.status == s for r in self.schedules)
                for s in sorted({r.status for r in self.schedules})
            },
            "runs": [asdict(r) | {"schedule": str(r.schedule)} for r in self.schedules],
        }


def schedules(lab: Lab, seed: int, count: int) -> list[Schedule]:
    """`count` fault schedules drawn with `seed`: the same seed always gives the same list."""
    rng = random.Random(seed)
    # Through an inventory, only what ssh can do (the same seed draws from that shorter list).
    faults = over_inventory() if lab.through_inventory else sorted(FAULTS)
    if not faults:
        raise ConfigError("no fault of the campaign can be done through an inventory")
    return [
        Schedule(rng.choice(faults), rng.choice(lab.settings.node_names), rng.choice(PHASES))
        for _ in range(count)
    ]


def run_schedule(lab: Lab, schedule: Schedule, target: str = "8.0.0") -> ScheduleResult:
    """Reset the lab, deploy `target` under light load, inject the fault when its phase starts,
    undo it, and check the end state: one release everywhere, no order lost."""
    halt_all(lab)
    lab.reset()
    fault = make(schedule.fault, lab, schedule.node, release=target)
    hit = threading.Event()

    def on_event(ev: TaskEvent) -> None:
        if ev.kind == "task_start" and ev.phase == schedule.phase and not hit.is_set():
            hit.set()
            fault.inject()
            if schedule.fault in STALLS:
                # A stall ends by itself (a long GC pause, a stuck VM): it must, because
                # Docker cannot end an exec into a frozen container until it is thawed.
                threading.Timer(STALL_S, fault.undo).start()

    others = tuple(n for n in lab.settings.node_names if n != schedule.node)
    outcome: dict[str, Any] = {}
    load = threading.Thread(
        target=lambda: outcome.setdefault(
            "load", run_load(lab, LoadSpec(nodes=others, rate=100, duration_s=6, drain_s=6))
        ),
        daemon=True,
    )
    load.start()
    try:
        result = deploy(lab, target, on_event=on_event)
    finally:
        with deferred(lambda: None):  # a second Ctrl-C must not leave the fault behind
            fault.undo()
    load.join(timeout=60)
    lab.wait_healthy(timeout=45)
    # A node the rescue could not reach undoes its unconfirmed switch within the confirm window.
    releases = lab.wait_uniform(timeout=25)
    account = outcome.get("load")
    return ScheduleResult(
        schedule=schedule,
        injected=hit.is_set(),
        status=result.status,
        releases=releases,
        uniform=len(set(releases.values())) == 1,
        lost_orders=account.unanswered if account else -1,
        error=result.error,
    )


def run_campaign(
    lab: Lab, seed: int, count: int, progress: Callable[[ScheduleResult], None] | None = None
) -> CampaignResult:
    """Run `count` seeded schedules; Ctrl-C ends the campaign after the schedule under way has
    undone its fault, and the lab is put back on its baseline either way."""
    with lab.exclusive(f"fault campaign, seed {seed}"):
        return _campaign(lab, seed, count, progress)


def _campaign(
    lab: Lab, seed: int, count: int, progress: Callable[[ScheduleResult], None] | None
) -> CampaignResult:
    campaign = CampaignResult(seed)
    try:
        for schedule in schedules(lab, seed, count):
            result = run_schedule(lab, schedule)
            campaign.schedules.append(result)
            if progress:
                progress(result)
    except KeyboardInterrupt:
        campaign.interrupted = True
    with deferred(lambda: None):  # the lab goes back to its baseline, a second Ctrl-C or not
        halt_all(lab)
        lab.reset()
    return campaign
