"""Deploys, rollbacks, flags and the kill switch across the fleet, through the playbooks.

Each call returns a plain result: what was asked, the status, every node's release before and
after, and where the run's artifacts are. `--unsafe` is the 2012 way (manual_deploy.yml).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from toolkit.errors import KnightError
from toolkit.guards.flag_registry import FlagLintError, check_release, load_registry
from toolkit.guards.rollback_plan import RollbackRefused, check, plan_rollback
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.lab.lab import Lab

from .ansible import PlaybookResult, TaskEvent, run_playbook
from .inventory import FLEET_GROUP

__all__ = ["DeployResult", "deploy", "flag", "killswitch", "rollback"]

#: Phases before the first switch: a failure there has changed no node.
BEFORE_FLIP = {"preflight", "barrier", "stage"}


@dataclass
class DeployResult:
    """The JSON contract of `knight deploy` / `knight rollback`."""

    action: str
    release: str
    status: str  # deployed, refused, rolled_back, failed
    unsafe: bool
    skipped: list[str]
    nodes: dict[str, dict[str, str | None]]
    error: str | None
    phase: str | None
    duration_s: float
    run_dir: str
    timings: dict[str, float | None] = field(default_factory=dict)
    #: The guards it ran with (name -> on) and the one that refused it, if one did.
    guards: dict[str, bool] = field(default_factory=dict)
    refused_by: str | None = None
    #: The rollback planner's plan, when the rollback guard looked at one.
    plan: dict[str, Any] | None = None
    #: How each node that switched did it: "warm" (handed over to a standby of the release
    #: started ahead of the flip) or "exec" (re-executed itself, an interpreter start).
    switches: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "deployed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _releases(lab: Lab) -> dict[str, dict[str, str | None]]:
    status = lab.status()
    return {n.name: {"release": n.release, "tree": n.tree} for n in status.nodes}


def resolve_guards(guards: GuardSet | None, unsafe: bool = False) -> GuardSet:
    """The guards a command runs with: none when `unsafe`, else `guards`, else the default
    (KNIGHT_GUARDS, or the default set)."""
    if unsafe:
        return GuardSet()
    return guards if guards is not None else default_guards()


def _limit(skip: list[str]) -> str | None:
    return ":".join([FLEET_GROUP, *(f"!{n}" for n in skip)]) if skip else None


def _iso(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _timings(run: PlaybookResult) -> dict[str, float | None]:
    """Flip skew (first to last node running the new code) and the longest intake pause."""
    flips = run.outputs.get("flip", {})
    started = [_iso(o.get("started_at")) for o in flips.values()]
    started = [s for s in started if s is not None]
    # The flip opens the intake itself once the fleet runs the new tree (resumed_at).
    pauses = [
        o["resumed_at"] - o["paused_at"]
        for o in flips.values()
        if "paused_at" in o and "resumed_at" in o
    ]
    return {
        "flip_skew_ms": round((max(started) - min(started)) * 1000, 1)
        if len(started) > 1
        else None,
        "intake_pause_ms": round(max(pauses) * 1000, 1) if pauses else None,
        "playbook_s": run.duration_s,
    }


def _switches(run: PlaybookResult) -> dict[str, str]:
    """node -> "warm" or "exec", for every node a flip or switch task switched."""
    found: dict[str, str] = {}
    for phase in ("flip", "switch", "rescue"):
        for host, out in run.outputs.get(phase, {}).items():
            if out.get("switched"):
                found[host] = "warm" if out.get("warm") else "exec"
    return dict(sorted(found.items()))


def _status(run: PlaybookResult, version: str, after: dict[str, dict[str, str | None]]) -> str:
    everywhere = bool(after) and all(n["release"] == version for n in after.values())
    if run.rc == 0 and not run.failures and not run.rescued:
        return "deployed" if everywhere else "failed"
    failure = run.first_failure
    if failure is not None and failure.phase in BEFORE_FLIP:
        return "refused"
    releases = {n["release"] for n in after.values()}
    if run.rescued and len(releases) == 1 and version not in releases:
        return "rolled_back"
    return "failed"


def playbook_vars(lab: Lab, version: str) -> dict[str, Any]:
    artifact = lab.publish(version)
    return {
        "knight_release": version,
        "knight_tree": artifact.tree,
        "knight_artifact_sha256": artifact.manifest["artifact_sha256"],
        "knight_artifact_url": f"{lab.ARTIFACT_URL}/{version}/{artifact.tarball.name}",
        "fleet_group": FLEET_GROUP,
    }


def deploy(
    lab: Lab,
    version: str,
    skip: list[str] | tuple[str, ...] = (),
    unsafe: bool = False,
    on_event: Callable[[TaskEvent], None] | None = None,
    action: str = "deploy",
    guards: GuardSet | None = None,
) -> DeployResult:
    """Deploy `version` to the fleet with `guards` (default: KNIGHT_GUARDS or the default set;
    `unsafe`: none).

    With the atomic guard the deploy is all or none (deploy.yml); without it, host by host as
    in 2012 (manual_deploy.yml). The flag registry refuses a release that fails its lint before
    anything runs; fencing writes the fleet manifest to every node of the fleet.
    """
    skip = list(skip)
    for node in skip:
        lab.check_node(node)
    lab.catalog.get(version)
    guards = resolve_guards(guards, unsafe)
    before = _releases(lab)
    if guards.flags:
        try:
            check_release(load_registry(lab.settings.registry_path), lab.catalog, version)
        except FlagLintError as exc:
            return _refused(action, version, guards, skip, before, "flags", str(exc))
    variables = playbook_vars(lab, version)
    run, fence_error = _run_deploy(lab, guards, variables, skip, on_event)
    after = _releases(lab)
    status = _status(run, version, after)
    failure = run.first_failure
    error = None
    if failure is not None:
        error = f"{failure.host}: {failure.message}"
    elif status != "deployed":
        behind = sorted(n for n, v in after.items() if v["release"] != version)
        error = f"fleet mixed: {', '.join(behind)} not on {version}"
    if fence_error is not None and error is None:
        # The fleet manifest was not written everywhere: not a deploy to call done.
        status, error = "failed", f"fence: {fence_error}"
    return DeployResult(
        action=action,
        release=version,
        status=status,
        unsafe=not guards.atomic,
        skipped=skip,
        nodes={
            n: {"before": before[n]["release"], "after": after.get(n, {}).get("release")}
            for n in before
        },
        error=error,
        phase=failure.phase if failure else None,
        duration_s=run.duration_s,
        run_dir=str(run.run_dir),
        timings=_timings(run) if guards.atomic else {"playbook_s": run.duration_s},
        guards=guards.to_json(),
        refused_by="atomic" if status in ("refused", "rolled_back") and guards.atomic else None,
        switches=_switches(run),
    )


def _run_deploy(
    lab: Lab,
    guards: GuardSet,
    variables: dict[str, Any],
    skip: list[str],
    on_event: Callable[[TaskEvent], None] | None,
) -> tuple[PlaybookResult, str | None]:
    """The deploy's playbook (all or none with the atomic guard, host by host without), then,
    with fencing but no atomic deploy, the fleet manifest on the whole declared fleet; returns
    the deploy's run and the fence's error, if it failed."""
    epoch = time.time_ns() // 1_000_000
    if guards.fencing and guards.atomic:
        variables["knight_fence_epoch"] = epoch
    playbook = "deploy.yml" if guards.atomic else "manual_deploy.yml"
    run = run_playbook(lab.settings, playbook, variables, _limit(skip), on_event)
    if not (guards.fencing and not guards.atomic):
        return run, None
    # The whole declared fleet, skipped nodes included: they are the ones to fence.
    fence = run_playbook(
        lab.settings, "fence.yml", {**variables, "knight_fence_epoch": epoch}, None, on_event
    )
    run.duration_s = round(run.duration_s + fence.duration_s, 3)
    if fence.rc != 0 or fence.failures:
        f = fence.first_failure
        return run, f"{f.host}: {f.message}" if f else f"fence.yml exited {fence.rc}"
    return run, None


def _refused(
    action: str,
    version: str,
    guards: GuardSet,
    skip: list[str],
    before: dict[str, dict[str, str | None]],
    guard: str,
    error: str,
    plan: dict[str, Any] | None = None,
) -> DeployResult:
    """A guard said no before anything ran: no node changed."""
    return DeployResult(
        action=action,
        release=version,
        status="refused",
        unsafe=not guards.atomic,
        skipped=skip,
        nodes={n: {"before": v["release"], "after": v["release"]} for n, v in before.items()},
        error=error,
        phase=guard,
        duration_s=0.0,
        run_dir="",
        guards=guards.to_json(),
        refused_by=guard,
        plan=plan,
    )


def rollback(
    lab: Lab,
    to: str | None = None,
    unsafe: bool = False,
    on_event: Callable[[TaskEvent], None] | None = None,
    guards: GuardSet | None = None,
    skip: list[str] | tuple[str, ...] = (),
) -> DeployResult:
    """Put the fleet back on `to` (default: the catalog's baseline).

    With the rollback guard the planner looks first: a rollback that would run code where an
    active flag means something else is refused, with the safe sequence in `plan`.
    """
    target = to or lab.catalog.baseline
    guards = resolve_guards(guards, unsafe)
    if guards.rollback:
        status = lab.status()
        plan = plan_rollback(status.nodes, lab.catalog, target)
        try:
            check(plan)
        except RollbackRefused as exc:
            before = {n.name: {"release": n.release, "tree": n.tree} for n in status.nodes}
            return _refused(
                "rollback", target, guards, list(skip), before, "rollback", str(exc),
                plan.to_json(),
            )  # fmt: skip
    return deploy(lab, target, skip=skip, on_event=on_event, action="rollback", guards=guards)


@dataclass
class FleetResult:
    """Result of a fleet-wide flag or kill-switch change."""

    action: str
    status: str  # done, refused, failed
    nodes: dict[str, dict[str, Any]]
    error: str | None
    duration_s: float
    run_dir: str
    refused_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fleet_call(
    lab: Lab,
    playbook: str,
    phase: str,
    action: str,
    extravars: dict[str, Any],
    on_event: Callable[[TaskEvent], None] | None,
) -> FleetResult:
    run = run_playbook(
        lab.settings, playbook, {"fleet_group": FLEET_GROUP, **extravars}, None, on_event
    )
    failure = run.first_failure
    return FleetResult(
        action=action,
        status="done" if run.rc == 0 and failure is None else "failed",
        nodes=run.outputs.get(phase, {}),
        error=f"{failure.host}: {failure.message}" if failure else None,
        duration_s=run.duration_s,
        run_dir=str(run.run_dir),
    )


def default_meaning(lab: Lab, name: str) -> str:
    """The meaning the newest release that reads a flag gives it: what turning it on intends."""
    for version in reversed(lab.catalog.versions):
        meaning = lab.catalog.get(version).flags.get(name)
        if meaning:
            return meaning
    raise KnightError(f"no release reads a flag named {name!r}; give --meaning")


def flag(
    lab: Lab,
    name: str,
    on: bool,
    meaning: str | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    guards: GuardSet | None = None,
) -> FleetResult:
    """Set a flag on every node of the fleet, with its declared meaning.

    With the flag registry guard, turning a flag on is refused (nothing changes anywhere) when
    any node's code gives it another meaning than the declared one: that is the 2012 launch,
    `flag_7` meaning RLP, on a server whose code still meant Power Peg by it.
    """
    guards = guards if guards is not None else default_guards()
    meaning = meaning or default_meaning(lab, name)
    if guards.flags and on:
        clashes = []
        for node in lab.status().nodes:
            code = lab.catalog.get(node.release).flags.get(name) if node.release else None
            if code is not None and code != meaning:
                clashes.append(f"{node.name} ({node.release}) means {code}")
        if clashes:
            return FleetResult(
                action=f"flag {name} on",
                status="refused",
                nodes={},
                error=f"{name} declared as {meaning}, but on " + "; ".join(clashes),
                duration_s=0.0,
                run_dir="",
                refused_by="flags",
            )
    extravars = {
        "knight_flag": name,
        "knight_flag_value": "on" if on else "off",
        "knight_flag_meaning": meaning,
    }
    return _fleet_call(
        lab, "flags.yml", "flag", f"flag {name} {'on' if on else 'off'}", extravars, on_event
    )


def killswitch(
    lab: Lab, kill: bool, on_event: Callable[[TaskEvent], None] | None = None
) -> FleetResult:
    """Kill switch on (every node stops trading) or off."""
    action = "kill" if kill else "resume-trading"
    return _fleet_call(
        lab, "killswitch.yml", "killswitch", action, {"knight_action": action}, on_event
    )
