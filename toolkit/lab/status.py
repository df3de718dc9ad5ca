"""The lab's status as `knight lab status` shows it: `NodeStatus` and `LabStatus`, and how they
are read from the containers and the routers' and the venue's admin APIs.

A fleet is read back right after a deploy, while its routers are still busy starting up (32
standbys warming on two cores): each node is asked with a bound per request and a few
retries, and only so many nodes at once, so that a slow answer is waited for, not reported as
an unknown release."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import tenacity
from docker.models.containers import Container

from toolkit.errors import LabError
from toolkit.settings import Settings

from .admin import AdminClient
from .engine import Engine, Foreign

__all__ = [
    "LabStatus",
    "NodeStatus",
    "ReadPolicy",
    "node_status",
    "plain_status",
    "read_fleet",
    "venue_status",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ReadPolicy:
    """How a fleet is read back: `workers` nodes at once, each request bounded by `timeout_s`,
    tried `attempts` times with a growing pause (at most `max_pause_s`) between tries. The
    defaults wait out a router that takes seconds to answer on a loaded machine (measured: 32
    nodes just deployed on two cores) and still end within about 15 s for a node that is down.
    """

    workers: int = 8
    timeout_s: float = 3.0
    attempts: int = 3
    max_pause_s: float = 1.0

    def retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=0.2, max=self.max_pause_s),
            retry=tenacity.retry_if_exception_type(LabError),
            reraise=True,
        )


#: The policy of `knight lab status` and of every deploy's before and after.
READ_POLICY = ReadPolicy()


def read_fleet(read: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """`read` of every item, in order, at most `workers` at a time."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(read, items))


@dataclass
class NodeStatus:
    """One router node as the lab sees it (the `nodes` entries of `knight lab status --json`)."""

    name: str
    container: str
    state: str
    release: str | None = None
    tree: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    healthy: bool = False
    trading: str | None = None
    intake: str | None = None
    config_hash: str | None = None
    flags_error: str | None = None
    error: str | None = None


@dataclass
class LabStatus:
    """The whole lab: its names, the venue, the client, the artifact repository and every node."""

    lab: str
    network: str
    image: str
    venue: dict[str, Any]
    client: dict[str, Any]
    artifacts: dict[str, Any]
    nodes: list[NodeStatus]

    @property
    def up(self) -> bool:
        return (
            bool(self.nodes)
            and all(n.healthy for n in self.nodes)
            and self.venue.get("healthy", False)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "network": self.network,
            "image": self.image,
            "up": self.up,
            "venue": self.venue,
            "client": self.client,
            "artifacts": self.artifacts,
            "nodes": [asdict(n) for n in self.nodes],
        }


def node_status(
    engine: Engine,
    settings: Settings,
    token: str,
    container: Container,
    policy: ReadPolicy = READ_POLICY,
) -> NodeStatus:
    """A router node's status: its container's state, then what its admin API reports (`token`:
    the node's own admin token), each request retried as `policy` says."""
    name = container.labels.get("knight.node", container.name)
    st = NodeStatus(name=name, container=container.name, state=container.status)
    if container.status != "running":
        st.error = f"container {container.status}"
        return st
    try:
        admin = AdminClient(
            name, engine.host_port(container, settings.admin_port), token, timeout=policy.timeout_s
        )
        version = policy.retrying()(admin.get, "/version")
        health = policy.retrying()(admin.request, "GET", "/health", auth=False)
    except LabError as exc:
        st.error = str(exc)
        return st
    st.release = version.get("release")
    st.tree = version.get("tree")
    st.flags = version.get("flags") or {}
    st.trading = version.get("trading")
    st.intake = version.get("intake")
    st.config_hash = version.get("config_hash")
    st.flags_error = version.get("flags_error")
    st.healthy = health.status == 200
    if not st.healthy:
        st.error = f"unhealthy: {health.body}"
    return st


def plain_status(engine: Engine, settings: Settings, role: str) -> dict[str, Any]:
    """A container's name and state (`missing` when there is none, `foreign` when a container of
    that name is not the lab's)."""
    name = settings.container(role)
    try:
        c = engine.get(name)
    except Foreign as exc:
        return {"container": name, "state": "foreign", "error": str(exc)}
    return {"container": name, "state": c.status if c else "missing"}


def venue_status(
    engine: Engine, settings: Settings, venue_admin: Callable[..., AdminClient]
) -> dict[str, Any]:
    """The venue's container state and, when it answers, its run's figures and connected nodes;
    `venue_admin(timeout=...)` gives its admin client."""
    info = plain_status(engine, settings, "venue")
    info["healthy"] = False
    if info["state"] != "running":
        return info
    try:
        stats = venue_admin(timeout=1.5).get("/stats")
    except LabError as exc:
        info["error"] = str(exc)
        return info
    info["healthy"] = True
    info.update(
        {
            k: stats.get(k)
            for k in ("run", "messages", "cap", "capped", "executions", "excess_shares")
        }
    )
    info["connected"] = sorted(
        n for n, v in (stats.get("nodes") or {}).items() if v.get("connected")
    )
    return info
