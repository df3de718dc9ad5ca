"""The lab: a labelled network, the venue, the client and the router nodes `smars-1..N`.

`Lab` owns the plumbing (engine, catalog, artifacts, the admin token, admin clients, containers),
brings the lab up and down, reads its status, publishes releases and reads the venue's record;
it inherits the baseline primitives (`baseline.BaselinePrimitives`). `up` is idempotent (it creates
what is missing, starts what is stopped, leaves what runs); `down` removes everything that carries
the lab's label.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from docker.models.containers import Container

from toolkit.errors import LabError
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.releases.artifacts import Artifact, build
from toolkit.releases.catalog import Catalog, load_catalog
from toolkit.settings import Settings, load_settings, node_key

from .admin import AdminClient
from .baseline import BaselinePrimitives
from .engine import ContainerSpec, Engine, FileEntry
from .specs import lab_specs
from .status import LabStatus, NodeStatus, node_status, plain_status, venue_status

__all__ = ["Lab"]

Progress = Callable[[str], None]


class Lab(BaselinePrimitives):
    """One lab on the local Docker engine."""

    #: Where nodes download releases from during a deploy (the lab's artifact repository).
    ARTIFACT_URL = "http://artifacts:8080"

    def __init__(
        self,
        settings: Settings | None = None,
        engine: Engine | None = None,
        guards: GuardSet | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        #: The guards the routers are given when created or reset (see set_guards).
        self.guards = guards if guards is not None else default_guards()
        self._engine = engine
        self._catalog: Catalog | None = None
        self._token: str | None = None

    # -- plumbing --------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine(self.settings.lab)
        return self._engine

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.settings.catalog_path, self.settings.router_source)
        return self._catalog

    def artifact(self, version: str) -> Artifact:
        """The built artifact of a release (built now from the catalog: it is cheap and exact)."""
        return build(self.catalog, version, self.settings.router_source, self.settings.dist)

    @property
    def token(self) -> str:
        """The lab's admin token: read from a running container, or new for a new lab."""
        if self._token is None:
            for c in self.engine.containers():
                env = self.engine.env_of(c)
                found = env.get("SMARS_ADMIN_TOKEN") or env.get("VENUE_ADMIN_TOKEN")
                if found:
                    self._token = found
                    break
            else:
                self._token = secrets.token_hex(16)
        return self._token

    def _container(self, role_or_node: str) -> Container:
        c = self.engine.get(self.settings.container(role_or_node))
        if c is None:
            raise LabError(
                f"{role_or_node}: no such container in lab {self.settings.lab!r} (knight lab up)"
            )
        return c

    def node_admin(self, node: str, timeout: float = 2.0) -> AdminClient:
        c = self._container(node)
        return AdminClient(
            node, self.engine.host_port(c, self.settings.admin_port), self.token, timeout=timeout
        )

    def venue_admin(self, timeout: float = 5.0) -> AdminClient:
        c = self._container("venue")
        port = self.engine.host_port(c, self.settings.venue_admin_port)
        return AdminClient("venue", port, self.token, timeout=timeout)

    def order_port(self, node: str) -> int:
        """Host port (127.0.0.1) of a node's order port: for control traffic, not for load."""
        return self.engine.host_port(self._container(node), self.settings.order_port)

    def client_container(self) -> Container:
        return self._container("client")

    def check_node(self, node: str) -> None:
        if node not in self.settings.node_names:
            raise LabError(f"unknown node {node!r} (nodes: smars-1 .. smars-{self.settings.nodes})")

    # -- up / down -------------------------------------------------------------------------
    def up(self, progress: Progress | None = None, timeout: float = 60.0) -> LabStatus:
        """Bring the lab up: create what is missing, start what is stopped; wait until healthy."""
        say = progress or (lambda _msg: None)
        s = self.settings
        if not self.engine.image_exists(s.image):
            raise LabError(f"the lab image {s.image} is missing: build it with `make image`")
        image_id = self.engine.image_id(s.image)
        artifact = self.artifact(self.catalog.baseline)
        self.engine.ensure_network(s.network)
        specs = lab_specs(
            s, artifact, token=self.token, flags=self.baseline_flags(), guards=self.guards
        )
        ensure = partial(self._ensure, image_id=image_id)
        # The venue first: routers connect to it as they start.
        say(ensure(specs[0]))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for line in pool.map(ensure, specs[1:]):
                say(line)
        self.wait_healthy(timeout=timeout, progress=say)
        return self.status()

    def _ensure(self, spec: ContainerSpec, image_id: str) -> str:
        """Make one container of the lab run the lab image; says what it did."""
        s = self.settings
        existing = self.engine.get(spec.name)
        if existing is not None and existing.attrs.get("Image") != image_id:
            self.engine.remove(existing)
            verb = "recreated (new image)"
        elif existing is not None and existing.status == "running":
            return f"{spec.hostname}: running"
        elif existing is not None:
            self.engine.start(existing)
            return f"{spec.hostname}: started"
        else:
            verb = "created"
        container = self.engine.create(spec, s.image, s.network, s.uid)
        self.engine.start(container)
        return f"{spec.hostname}: {verb}"

    def wait_healthy(self, timeout: float = 60.0, progress: Progress | None = None) -> None:
        """Wait until the venue and every node answer healthy (nodes connected to the venue)."""
        deadline = time.monotonic() + timeout
        pending = set(self.settings.node_names) | {"venue"}
        last_error: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                try:
                    admin = (
                        self.venue_admin(timeout=1.0)
                        if name == "venue"
                        else self.node_admin(name, 1.0)
                    )
                    resp = admin.request("GET", "/health", auth=False)
                    if resp.status == 200:
                        pending.discard(name)
                        if progress:
                            progress(f"{name}: healthy")
                    else:
                        last_error[name] = f"health {resp.status}: {resp.body}"
                except LabError as exc:
                    last_error[name] = str(exc)
            if pending:
                time.sleep(0.1)
        if pending:
            detail = "; ".join(f"{n}: {last_error.get(n, 'no answer')}" for n in sorted(pending))
            raise LabError(f"lab not healthy after {timeout:.0f}s: {detail}")

    def down(self) -> dict[str, int]:
        """Remove every container, network and volume with this lab's label."""
        self._token = None
        return self.engine.remove_lab()

    # -- status ----------------------------------------------------------------------------
    def node_status(self, container: Container) -> NodeStatus:
        """One router node's status, read from its container and its admin API."""
        return node_status(self.engine, self.settings, self.token, container)

    def status(self) -> LabStatus:
        s = self.settings
        routers = sorted(
            self.engine.containers(role="router"), key=lambda c: node_key(c.labels["knight.node"])
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            nodes = list(pool.map(self.node_status, routers))
        return LabStatus(
            lab=s.lab,
            network=s.network,
            image=s.image,
            venue=venue_status(self.engine, s, self.venue_admin),
            client=plain_status(self.engine, s, "client"),
            artifacts=plain_status(self.engine, s, "artifacts"),
            nodes=nodes,
        )

    # -- the venue's record ------------------------------------------------------------------
    def executions(self, page: int = 50_000) -> list[dict[str, Any]]:
        """Every execution of the venue's current run, in order, as dicts."""
        venue = self.venue_admin(timeout=30.0)
        rows: list[dict[str, Any]] = []
        since = 0
        while True:
            doc = venue.get(f"/executions?since={since}&limit={page}")
            fields = doc["fields"]
            rows += [dict(zip(fields, row, strict=True)) for row in doc["executions"]]
            if not doc["executions"] or doc["next"] == since:
                return rows
            since = doc["next"]

    # -- artifacts -------------------------------------------------------------------------
    def publish(self, version: str) -> Artifact:
        """Put a release's artifact into the lab's artifact repository (idempotent)."""
        artifact = self.artifact(version)
        entries = [
            FileEntry(f"{version}/{artifact.tarball.name}", artifact.tarball.read_bytes()),
            FileEntry(f"{version}/manifest.json", artifact.manifest_path.read_bytes()),
        ]
        self.engine.put(self._container("artifacts"), "/srv/artifacts", entries, self.settings.uid)
        return artifact
