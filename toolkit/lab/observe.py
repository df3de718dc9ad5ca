"""The lab's observe containers (`knight lab up --observe`): Prometheus, Alertmanager and the
webhook receiver Alertmanager posts to, from the observe image, on the lab's network.

Prometheus scrapes every router and the venue by name (file-based discovery: the targets are
files this module writes into its container, so a node added or removed is followed) and loads
`monitor/prometheus/rules.yml`. Alertmanager sends critical alerts to the receiver's `kill`
webhook. The host reaches the three only through their ports published on 127.0.0.1; the
receiver keeps the notifications until knight reads them (toolkit/monitor/receiver.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from toolkit.errors import LabError
from toolkit.settings import Settings, node_key

from .admin import AdminClient
from .engine import ContainerSpec, FileEntry, Resources
from .specs import labels
from .tokens import LabTokens

if TYPE_CHECKING:
    from .lab import Lab

__all__ = [
    "ALERTMANAGER_PORT",
    "CONF",
    "OBSERVE_ROLES",
    "PROMETHEUS_PORT",
    "RECEIVER_PORT",
    "config_entries",
    "observe_specs",
    "target_entries",
    "wait_observing",
    "write_targets",
]

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
RECEIVER_PORT = 9095
OBSERVE_ROLES = ("prometheus", "alertmanager", "receiver")
#: Where the observe containers read their configuration (the image makes it the deploy user's).
CONF = "/etc/knight-observe"
#: What the configuration was made from: a container made from another is recreated.
CONFIG_LABEL = "knight.observe-config"

_MIB = 2**20
# Go's runtime threads count as processes; two hours of 1 s samples of ten targets is small.
PROMETHEUS_RESOURCES = Resources(memory=512 * _MIB, pids=256)
ALERTMANAGER_RESOURCES = Resources(memory=256 * _MIB, pids=256)
RECEIVER_RESOURCES = Resources(memory=128 * _MIB, pids=128)

Progress = Callable[[str], None]


def config_entries(settings: Settings, tokens: LabTokens) -> dict[str, list[FileEntry]]:
    """Role -> the files placed in its CONF before it starts: Prometheus's configuration and the
    monitor's rules (the very file promtool tests), Alertmanager's and the receiver's token."""
    src = settings.observe_source
    return {
        "prometheus": [
            FileEntry("prometheus.yml", (src / "prometheus" / "prometheus.yml").read_bytes()),
            FileEntry("rules.yml", (src / "prometheus" / "rules.yml").read_bytes()),
        ],
        "alertmanager": [
            FileEntry("alertmanager.yml", (src / "alertmanager" / "alertmanager.yml").read_bytes()),
            FileEntry("receiver.token", tokens.receiver.encode() + b"\n", 0o644),
        ],
    }


def target_entries(settings: Settings, nodes: list[str]) -> list[FileEntry]:
    """Prometheus's file-based discovery: one target per router's admin port, and the venue's."""

    def doc(targets: list[str]) -> bytes:
        return (json.dumps([{"targets": targets, "labels": {}}], indent=2) + "\n").encode()

    routers = [f"{n}:{settings.admin_port}" for n in sorted(nodes, key=node_key)]
    return [
        FileEntry("targets/smars.json", doc(routers)),
        FileEntry("targets/venue.json", doc([f"venue:{settings.venue_admin_port}"])),
    ]


def _digest(entries: list[FileEntry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(e.path.encode() + b"\0" + e.data + b"\0")
    return h.hexdigest()[:16]


def observe_specs(settings: Settings, tokens: LabTokens) -> list[ContainerSpec]:
    """The three observe containers: each role of the observe image under its own name, its
    port published on 127.0.0.1, its configuration in place (and its digest in a label)."""
    files = config_entries(settings, tokens)
    sized = {
        "prometheus": (PROMETHEUS_PORT, PROMETHEUS_RESOURCES),
        "alertmanager": (ALERTMANAGER_PORT, ALERTMANAGER_RESOURCES),
        "receiver": (RECEIVER_PORT, RECEIVER_RESOURCES),
    }
    specs = []
    for role in OBSERVE_ROLES:
        port, resources = sized[role]
        own = files.get(role, [])
        if role == "prometheus":
            own = [*own, *target_entries(settings, settings.node_names)]
        specs.append(
            ContainerSpec(
                name=settings.container(role),
                hostname=role,
                command=[role],
                labels={**labels(role), CONFIG_LABEL: _digest(own)},
                user=f"{settings.uid}:{settings.uid}",
                resources=resources,
                env={"RECEIVER_TOKEN": tokens.receiver} if role == "receiver" else {},
                ports=(port,),
                aliases=(role,),
                files=[(CONF, own)] if own else [],
            )
        )
    return specs


def write_targets(lab: Lab) -> list[str]:
    """Point Prometheus at the routers the lab has now (its router containers), and the venue;
    it follows the files within seconds. Returns the nodes written."""
    nodes = sorted(
        (c.labels["knight.node"] for c in lab.engine.containers(role="router")), key=node_key
    )
    prometheus = lab.observe_container("prometheus")
    lab.engine.put(prometheus, CONF, target_entries(lab.settings, nodes), lab.settings.deploy_uid)
    return nodes


def wait_observing(lab: Lab, timeout: float = 120.0, progress: Progress | None = None) -> None:
    """Wait until Prometheus and Alertmanager are ready, the receiver answers, and Prometheus
    has scraped every router it is pointed at (each target up)."""
    say = progress or (lambda _m: None)
    deadline = time.monotonic() + timeout
    checks: dict[str, Callable[[], str | None]] = {
        "alertmanager": lambda: _ready(lab.observe_client("alertmanager"), "/-/ready"),
        "receiver": lambda: _ready(lab.observe_client("receiver"), "/health"),
        "prometheus": lambda: _targets_up(lab.observe_client("prometheus")),
    }
    pending = dict(checks)
    last: dict[str, str] = {}
    while pending:
        for role, check in list(pending.items()):
            try:
                problem = check()
            except LabError as exc:
                problem = str(exc)
            if problem is None:
                del pending[role]
                say(f"{role}: ready")
            else:
                last[role] = problem
        if pending and time.monotonic() >= deadline:
            detail = "; ".join(f"{r}: {last.get(r, 'no answer')}" for r in sorted(pending))
            raise LabError(f"observe containers not ready after {timeout:.0f}s: {detail}")
        if pending:
            time.sleep(0.25)


def _ready(client: AdminClient, path: str) -> str | None:
    resp = client.request("GET", path, auth=False)
    return None if resp.status == 200 else f"{path} answered {resp.status}"


def _targets_up(client: AdminClient) -> str | None:
    """None once every target of the smars job has been scraped and is up."""
    ready = _ready(client, "/-/ready")
    if ready is not None:
        return ready
    active = client.get("/api/v1/targets?state=active")["data"]["activeTargets"]
    routers = [t for t in active if t["labels"].get("job") == "smars"]
    down = [t["labels"]["instance"] for t in routers if t.get("health") != "up"]
    if not routers:
        return "no router target yet"
    return f"targets not up yet: {', '.join(down)}" if down else None
