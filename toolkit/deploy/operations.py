"""Deploys, rollbacks, flags and the kill switch across the fleet, through the playbooks.

Each call returns a plain result: what was asked, the status, every node's release before and
after, and where the run's artifacts are. `--unsafe` is the 2012 way (manual_deploy.yml).
Each takes a fleet (toolkit/deploy/fleet.py): a lab, whose own inventory is used, or any fleet
an inventory declares.

This module is also the gate of every value bound for a playbook: each call checks its
arguments against a strict pattern before it touches the lab, and every variable handed to
Ansible is checked once more against its rule (`check_playbook_vars`), so that neither the CLI
nor a Python caller can get a shell word, a Jinja template or an Ansible host pattern onto a
node. A bad value is a ConfigError (exit 2) in one line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from toolkit.errors import ConfigError, KnightError
from toolkit.guards.flag_registry import FlagLintError, check_release, load_registry
from toolkit.guards.rollback_plan import RollbackRefused, check, plan_rollback
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.lab.lab import Lab
from toolkit.releases.catalog import FLAG_NAME, VERSION

from .ansible import PlaybookResult, TaskEvent, run_playbook
from .fleet import Fleet, as_fleet
from .inventory import FLEET_GROUP
from .patterns import EPOCH, HEX64, NODE_NAME, URL

__all__ = [
    "DeployResult",
    "check_flag_name",
    "check_meaning",
    "check_node_name",
    "check_playbook_vars",
    "check_version",
    "deploy",
    "flag",
    "killswitch",
    "rollback",
    "unreachable_reason",
]

# -- the patterns of what reaches a playbook ---------------------------------------------------
#: A flag's declared meaning names the strategy it turns on: the shape of a flag name (the flag
#: registry checks meanings the same way).
MEANING = FLAG_NAME

#: Every variable the toolkit hands a playbook: (what it is, its pattern, what a good one is).
#: A variable without a rule is refused, so a new one cannot slip past the check.
PLAYBOOK_VARS: dict[str, tuple[str, re.Pattern[str], str]] = {
    "fleet_group": ("inventory group", NODE_NAME, "a name (letters, digits, . _ -)"),
    "knight_release": ("release", VERSION, "MAJOR.MINOR.PATCH"),
    "knight_tree": ("tree hash", HEX64, "64 lowercase hex digits"),
    "knight_artifact_sha256": ("artifact SHA-256", HEX64, "64 lowercase hex digits"),
    "knight_artifact_url": ("artifact URL", URL, "http(s)://host[:port]/path"),
    "knight_fence_epoch": ("fence epoch", EPOCH, "a whole number of milliseconds"),
    "knight_flag": ("flag name", FLAG_NAME, "a name (a-z, 0-9 and _)"),
    "knight_flag_value": ("flag value", re.compile(r"on|off"), "on or off"),
    "knight_flag_meaning": ("flag meaning", MEANING, "a strategy name (a-z, 0-9 and _)"),
    "knight_action": ("kill-switch action", re.compile(r"kill|resume-trading"), "kill or resume"),
}


def _shown(value: object) -> str:
    """A refused value as the message shows it: quoted, escaped (one line), cut short."""
    text = repr(value)
    return text if len(text) <= 72 else text[:69] + "..."


def _checked(value: object, what: str, pattern: re.Pattern[str], shape: str) -> str:
    # An int is accepted where its digits are (the epoch); a bool is never a number here.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        text = None
    if text is None or not pattern.fullmatch(text):
        raise ConfigError(f"{what} {_shown(value)} is not valid: expected {shape}")
    return text


def check_version(value: object, what: str = "release") -> str:
    """A release version, MAJOR.MINOR.PATCH, or ConfigError."""
    return _checked(value, what, VERSION, "MAJOR.MINOR.PATCH")


def check_flag_name(value: object) -> str:
    """A flag name (a-z, 0-9, _), or ConfigError."""
    return _checked(
        value, "flag name", FLAG_NAME, "a name (a-z, 0-9 and _, starting with a letter, at most 64)"
    )


def check_meaning(value: object) -> str:
    """A flag's declared meaning (a strategy name), or ConfigError."""
    return _checked(value, "flag meaning", MEANING, "a strategy name (a-z, 0-9 and _)")


def check_node_name(value: object) -> str:
    """A node's inventory name (a host name), or ConfigError."""
    return _checked(value, "node", NODE_NAME, "a host name (letters, digits, . _ -)")


def check_playbook_vars(variables: dict[str, Any]) -> dict[str, Any]:
    """Every variable bound for a playbook, checked against its rule; returns them unchanged."""
    for name, value in variables.items():
        rule = PLAYBOOK_VARS.get(name)
        if rule is None:
            raise ConfigError(f"no rule for playbook variable {name!r}: not passed to Ansible")
        _checked(value, *rule)
    return variables


def _run(
    fleet: Fleet,
    playbook: str,
    variables: dict[str, Any],
    skip: list[str] | None,
    on_event: Callable[[TaskEvent], None] | None,
) -> PlaybookResult:
    """The one way this module runs a playbook: its variables and skipped nodes checked first,
    against the fleet's inventory."""
    for node in skip or ():
        check_node_name(node)
    return run_playbook(
        fleet.settings,
        playbook,
        check_playbook_vars(variables),
        _limit(skip or []),
        on_event,
        inventory=fleet.inventory_path,
        envvars=fleet.ansible_env(),
    )


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


def _releases(fleet: Fleet) -> dict[str, dict[str, str | None]]:
    status = fleet.status()
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
    # Only the nodes that switched: one already on the release (a rollback of a fleet already
    # back) started whenever it did, which says nothing of this flip.
    started = [_iso(o.get("started_at")) for o in flips.values() if o.get("switched")]
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


def playbook_vars(lab: Lab | Fleet, version: str) -> dict[str, Any]:
    """The variables of a deploy of `version` (its artifact published first), checked: the tree,
    checksum and URL come from the artifact's manifest, a file that may have been edited; the
    URL is under the inventory's artifact_base_url."""
    check_version(version)
    artifact, url = as_fleet(lab).publish(version)
    return check_playbook_vars(
        {
            "knight_release": version,
            "knight_tree": artifact.tree,
            "knight_artifact_sha256": artifact.manifest["artifact_sha256"],
            "knight_artifact_url": url,
            "fleet_group": FLEET_GROUP,
        }
    )


def _checked_request(
    lab: Lab | Fleet, version: str, skip: list[str] | tuple[str, ...]
) -> tuple[Fleet, list[str]]:
    """A deploy's release and skipped nodes: well-formed (ConfigError, before the fleet is
    asked), then known to the catalog and the fleet."""
    check_version(version)
    checked = [check_node_name(node) for node in skip]
    fleet = as_fleet(lab)
    for node in checked:
        fleet.check_node(node)
    fleet.catalog.get(version)
    return fleet, checked


def deploy(
    lab: Lab | Fleet,
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
    fleet, skip = _checked_request(lab, version, skip)
    guards = resolve_guards(guards, unsafe)
    with fleet.exclusive(f"{action} {version}"):
        return _deploy(fleet, version, skip, guards, on_event, action)


def _deploy(
    fleet: Fleet,
    version: str,
    skip: list[str],
    guards: GuardSet,
    on_event: Callable[[TaskEvent], None] | None,
    action: str,
) -> DeployResult:
    before = _releases(fleet)
    if guards.flags:
        try:
            check_release(load_registry(fleet.settings.registry_path), fleet.catalog, version)
        except FlagLintError as exc:
            return _refused(action, version, guards, skip, before, "flags", str(exc))
    variables = playbook_vars(fleet, version)
    run, fence_error = _run_deploy(fleet, guards, variables, skip, on_event)
    after = _releases(fleet)
    status = _status(run, version, after)
    failure = run.first_failure
    error = None
    if failure is not None:
        error = f"{failure.host}: {unreachable_reason(failure.message)}"
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
    fleet: Fleet,
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
    run = _run(fleet, playbook, variables, skip, on_event)
    if not (guards.fencing and not guards.atomic):
        return run, None
    # The whole declared fleet, skipped nodes included: they are the ones to fence.
    fence = _run(fleet, "fence.yml", {**variables, "knight_fence_epoch": epoch}, None, on_event)
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
    lab: Lab | Fleet,
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
    if to is not None:
        check_version(to)
    skip = [check_node_name(node) for node in skip]
    fleet = as_fleet(lab)
    target = to or fleet.catalog.baseline
    guards = resolve_guards(guards, unsafe)
    # The plan and the deploy under one hold of the lab: nothing changes the fleet in between.
    with fleet.exclusive(f"rollback to {target}"):
        return _rollback(fleet, target, guards, skip, on_event)


def _rollback(
    fleet: Fleet,
    target: str,
    guards: GuardSet,
    skip: list[str],
    on_event: Callable[[TaskEvent], None] | None,
) -> DeployResult:
    if guards.rollback:
        status = fleet.status()
        plan = plan_rollback(status.nodes, fleet.catalog, target)
        try:
            check(plan)
        except RollbackRefused as exc:
            before = {n.name: {"release": n.release, "tree": n.tree} for n in status.nodes}
            return _refused(
                "rollback", target, guards, list(skip), before, "rollback", str(exc),
                plan.to_json(),
            )  # fmt: skip
    return deploy(fleet, target, skip=skip, on_event=on_event, action="rollback", guards=guards)


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
    fleet: Fleet,
    playbook: str,
    phase: str,
    action: str,
    extravars: dict[str, Any],
    on_event: Callable[[TaskEvent], None] | None,
) -> FleetResult:
    run = _run(fleet, playbook, {"fleet_group": FLEET_GROUP, **extravars}, None, on_event)
    failure = run.first_failure
    return FleetResult(
        action=action,
        status="done" if run.rc == 0 and failure is None else "failed",
        nodes=run.outputs.get(phase, {}),
        error=f"{failure.host}: {unreachable_reason(failure.message)}" if failure else None,
        duration_s=run.duration_s,
        run_dir=str(run.run_dir),
    )


def default_meaning(lab: Lab | Fleet, name: str) -> str:
    """The meaning the newest release that reads a flag gives it: what turning it on intends."""
    catalog = lab.catalog
    for version in reversed(catalog.versions):
        meaning = catalog.get(version).flags.get(name)
        if meaning:
            return meaning
    raise KnightError(f"no release reads a flag named {name!r}; give --meaning")


def flag(
    lab: Lab | Fleet,
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
    check_flag_name(name)
    if meaning is not None:
        check_meaning(meaning)
    guards = guards if guards is not None else default_guards()
    fleet = as_fleet(lab)
    meaning = meaning or default_meaning(fleet, name)
    with fleet.exclusive(f"flag {name} {'on' if on else 'off'}"):
        return _flag(fleet, name, on, meaning, on_event, guards)


def _flag(
    fleet: Fleet,
    name: str,
    on: bool,
    meaning: str,
    on_event: Callable[[TaskEvent], None] | None,
    guards: GuardSet,
) -> FleetResult:
    if guards.flags and on:
        clashes = []
        for node in fleet.status().nodes:
            code = fleet.catalog.get(node.release).flags.get(name) if node.release else None
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
        fleet, "flags.yml", "flag", f"flag {name} {'on' if on else 'off'}", extravars, on_event
    )


def killswitch(
    lab: Lab | Fleet, kill: bool, on_event: Callable[[TaskEvent], None] | None = None
) -> FleetResult:
    """Kill switch on (every node stops trading) or off."""
    action = "kill" if kill else "resume-trading"
    return _fleet_call(
        as_fleet(lab), "killswitch.yml", "killswitch", action, {"knight_action": action}, on_event
    )


#: What ssh prints when the key a host presents is not the one pinned for it.
_HOST_KEY_FAILURE = re.compile(
    r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
    r"No (?:ED25519|RSA|ECDSA)?\s*host key is known"
)


def unreachable_reason(message: str) -> str:
    """A node's failure as one line; a host key that does not match the one pinned for the node
    says so in plain words (ssh's own message is a banner of many lines)."""
    if _HOST_KEY_FAILURE.search(message):
        return (
            "host key verification failed: the key the node presented is not the one pinned "
            "for it (known_hosts); nothing was run on it"
        )
    return message
