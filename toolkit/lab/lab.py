"""The lab: a labelled network, the venue, the client and the router nodes `smars-1..N`.

`Lab` owns the plumbing (engine, catalog, artifacts, the lab's tokens, admin clients,
containers, the lab lock), brings the lab up and down, reads its status, publishes releases and
reads the venue's record; it inherits the baseline primitives (`baseline.BaselinePrimitives`).
`up` is idempotent (it creates what is missing, recreates what differs from its spec, starts
what is stopped, leaves what runs) and refuses a container that bears a lab name without the
lab's label; `down` removes everything that carries the lab's label, and the lab's state folder.

A lab's nodes are reached one of two ways (its transport): `docker exec`, or ssh to a port per
node published on 127.0.0.1, with the lab's own keys (toolkit/lab/ssh.py).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import partial
from typing import Any

from docker.models.containers import Container

from toolkit.errors import LabError
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.releases.artifacts import Artifact, build
from toolkit.releases.catalog import Catalog, load_catalog
from toolkit.settings import TRANSPORTS, Settings, load_settings, node_key

from . import lock, observe
from .admin import AdminClient
from .baseline import BaselinePrimitives
from .engine import ContainerSpec, Engine, FileEntry
from .image import build_observe_image
from .specs import SECRET_LABEL, SPEC_LABEL, TRANSPORT_LABEL, lab_specs, spec_digest
from .ssh import SshKeys, node_ssh_files
from .status import (
    READ_POLICY,
    LabStatus,
    NodeStatus,
    node_status,
    plain_status,
    read_fleet,
    venue_status,
)
from .tokens import LabTokens

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
        self._tokens: LabTokens | None = None

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
    def tokens(self) -> LabTokens:
        """The lab's tokens: from the secret its venue container keeps, or new for a new lab
        (then `up` recreates every container made with another one)."""
        if self._tokens is None:
            venue = self.engine.get(self.settings.container("venue"))
            secret = venue.labels.get(SECRET_LABEL) if venue is not None else None
            self._tokens = LabTokens(secret) if secret else LabTokens.new()
        return self._tokens

    @property
    def token(self) -> str:
        """The lab secret, from which each node's, the venue's and the hello token derive; it
        opens nothing by itself."""
        return self.tokens.secret

    @property
    def secrets(self) -> list[str]:
        """Every secret of the lab (the lab secret, the venue's, the hello and each node's
        token): what a journal or a log must never show."""
        return self.tokens.every(self.settings.node_names)

    def exclusive(self, what: str) -> AbstractContextManager[None]:
        """Hold the lab lock while a mutating operation (`what`: "deploy 8.0.0", "experiment
        skipped_node") runs: another process's is refused at once with LabBusy (one line, exit
        1) naming what holds it; nested in one process, it only counts (toolkit/lab/lock.py)."""
        return lock.exclusive(self.settings.lab, self.settings.lock_path, what)

    def _container(self, role_or_node: str) -> Container:
        c = self.engine.get(self.settings.container(role_or_node))
        if c is None:
            raise LabError(
                f"{role_or_node}: no such container in lab {self.settings.lab!r} (knight lab up)"
            )
        return c

    def node_admin(self, node: str, timeout: float = 2.0) -> AdminClient:
        """A node's admin client, with that node's own token."""
        port = self.engine.host_port(self._container(node), self.settings.admin_port)
        return AdminClient(node, port, self.tokens.node(node), timeout=timeout)

    def venue_admin(self, timeout: float = 5.0) -> AdminClient:
        """The venue's admin client, with the venue's token."""
        port = self.engine.host_port(self._container("venue"), self.settings.venue_admin_port)
        return AdminClient("venue", port, self.tokens.venue, timeout=timeout)

    def order_port(self, node: str) -> int:
        """Host port (127.0.0.1) of a node's order port: for control traffic, not for load."""
        return self.engine.host_port(self._container(node), self.settings.order_port)

    def client_container(self) -> Container:
        return self._container("client")

    # -- where the load generator runs (the client container; a fleet's load host) ------------
    #: True for a fleet reached through an inventory alone (toolkit/deploy/fleet_lab.py): no
    #: Docker engine on its path, so only what ssh and HTTP can do is possible there.
    through_inventory = False

    def has_client(self) -> bool:
        """Whether the load generator's host is there to run on (the client container runs)."""
        client = self.engine.get(self.settings.container("client"))
        return client is not None and client.status == "running"

    def client_exec(self, argv: list[str]) -> tuple[int, str]:
        """Run a command where the load generator runs; (exit code, combined output)."""
        return self.engine.exec(self.client_container(), argv)

    def client_exec_stream(
        self, argv: list[str], on_stderr: Callable[[str], None] | None
    ) -> tuple[int, bytes]:
        """Run a command where the load generator runs, each stderr line to `on_stderr` as it
        comes; (exit code, stdout)."""
        return self.engine.exec_stream(self.client_container(), argv, on_stderr)

    def node_control(self, node: str, word: str) -> None:
        """Say `word` to a node's routerd (stop, kill, pause, cont, start): over ssh, on a fleet
        reached through an inventory; a lab does its faults through Docker instead."""
        raise LabError(f"{node}: a lab's faults go through Docker, not routerd's control pipe")

    def reload(self, node: str, times: int = 1) -> None:
        """Make a node re-read its settings `times` times over (its admin API, with its token)."""
        admin = self.node_admin(node)
        for _ in range(times):
            admin.post("/reload")

    def order_address(self, node: str) -> str:
        """host:port of a node's order port as the load generator reaches it (the lab network)."""
        return f"{node}:{self.settings.order_port}"

    @property
    def transport(self) -> str:
        """How the nodes are reached: as settings say (KNIGHT_TRANSPORT, --transport), else as
        the lab's first node was made, else docker."""
        if self.settings.transport is not None:
            return self.settings.transport
        first = self.engine.get(self.settings.container(self.settings.node_names[0]))
        found = (first.labels.get(TRANSPORT_LABEL) if first is not None else None) or "docker"
        return found if found in TRANSPORTS else "docker"

    @property
    def ssh_keys(self) -> SshKeys:
        """The lab's ssh keys and known_hosts, in its state folder (the ssh transport)."""
        return SshKeys(self.settings.state / "ssh")

    def ssh_ports(self) -> dict[str, int]:
        """node -> the host port (127.0.0.1) its sshd is published at (the ssh transport)."""
        return {
            node: self.engine.host_port(self._container(node), self.settings.ssh_port)
            for node in self.settings.node_names
        }

    def check_node(self, node: str) -> None:
        if node not in self.settings.node_names:
            raise LabError(f"unknown node {node!r} (nodes: smars-1 .. smars-{self.settings.nodes})")

    # -- up / down -------------------------------------------------------------------------
    def up(
        self, progress: Progress | None = None, timeout: float = 60.0, observe: bool = False
    ) -> LabStatus:
        """Bring the lab up: create what is missing, start what is stopped; wait until healthy.
        Refused, before anything changes, when a container or the network bears a lab name
        without the lab's label (LabError naming it). With `observe`, Prometheus, Alertmanager
        and their webhook receiver too (the observe image is built first when missing)."""
        say = progress or (lambda _msg: None)
        s = self.settings
        with self.exclusive("lab up"):
            if not self.engine.image_exists(s.image):
                raise LabError(f"the lab image {s.image} is missing: build it with `make image`")
            image_id = self.engine.image_id(s.image)
            artifact = self.artifact(self.catalog.baseline)
            specs = lab_specs(
                s,
                artifact,
                tokens=self.tokens,
                flags=self.baseline_flags(),
                guards=self.guards,
                ssh=self._ssh_files() if self.transport == "ssh" else None,
            )
            # Every name first (engine.get raises Foreign): a container that is not the lab's
            # stops `up` before it creates anything.
            for spec in specs:
                self.engine.get(spec.name)
            self.engine.ensure_network(s.network)
            ensure = partial(self._ensure, image_id=image_id)
            # The venue first: routers connect to it as they start.
            say(ensure(specs[0]))
            with ThreadPoolExecutor(max_workers=4) as pool:
                for line in pool.map(ensure, specs[1:]):
                    say(line)
            self.wait_healthy(timeout=timeout, progress=say)
            if self.transport == "ssh":
                say(f"known_hosts: {self.ssh_keys.write_known_hosts(self.ssh_ports())}")
            if observe:
                self._observe_up(say)
            return self.status()

    def _observe_up(self, say: Progress) -> None:
        """The observe containers, made as their specs say; targets written; ready."""
        s = self.settings
        if not self.engine.image_exists(s.observe_image):
            build_observe_image(s, self.engine, say)
        image_id = self.engine.image_id(s.observe_image)
        specs = observe.observe_specs(s, self.tokens)
        for spec in specs:
            self.engine.get(spec.name)  # Foreign before anything is made
        for spec in specs:
            say(self._ensure(spec, image_id, image=s.observe_image))
        say(f"prometheus targets: {len(observe.write_targets(self))} nodes and the venue")
        observe.wait_observing(self, progress=say)

    def observe_down(self) -> int:
        """Remove the observe containers alone (the rest of the lab stays); how many there were."""
        with self.exclusive("observe down"):
            found = [self.engine.get(self.settings.container(r)) for r in observe.OBSERVE_ROLES]
            for container in filter(None, found):
                self.engine.remove(container)
            return sum(c is not None for c in found)

    @property
    def observed(self) -> bool:
        """Whether the lab runs its observe containers (`up(observe=True)`)."""
        return all(self.engine.get(self.settings.container(r)) for r in observe.OBSERVE_ROLES)

    def observe_container(self, role: str) -> Container:
        """One of the observe containers (prometheus, alertmanager, receiver)."""
        if role not in observe.OBSERVE_ROLES:
            raise LabError(f"{role}: not an observe container ({', '.join(observe.OBSERVE_ROLES)})")
        found = self.engine.get(self.settings.container(role))
        if found is None:
            raise LabError(
                f"{role}: lab {self.settings.lab!r} does not observe (knight lab up --observe)"
            )
        return found

    def observe_client(self, role: str, timeout: float = 5.0) -> AdminClient:
        """The HTTP client of an observe container's API, through its port on 127.0.0.1 (the
        receiver's with the lab's receiver token)."""
        ports = {
            "prometheus": observe.PROMETHEUS_PORT,
            "alertmanager": observe.ALERTMANAGER_PORT,
            "receiver": observe.RECEIVER_PORT,
        }
        port = self.engine.host_port(self.observe_container(role), ports[role])
        token = self.tokens.receiver if role == "receiver" else ""
        return AdminClient(role, port, token, timeout=timeout)

    def _ssh_files(self) -> dict[str, list[FileEntry]]:
        """Each node's ssh files, the lab's keys made first where missing."""
        keys = self.ssh_keys
        keys.ensure(self.settings.node_names)
        return {
            n: node_ssh_files(keys, n, self.settings.deploy_uid) for n in self.settings.node_names
        }

    def _ensure(self, spec: ContainerSpec, image_id: str, image: str | None = None) -> str:
        """Make one container of the lab run as its spec says (the lab image unless `image`,
        its tokens, its limits); says what it did. One made otherwise is recreated: a
        container's image, environment and limits are fixed when it is made."""
        s = self.settings
        spec = replace(spec, labels={**spec.labels, SPEC_LABEL: spec_digest(spec, image_id)})
        existing = self.engine.get(spec.name)
        if existing is not None and existing.labels.get(SPEC_LABEL) != spec.labels[SPEC_LABEL]:
            self.engine.remove(existing)
            changed = "new image" if existing.attrs.get("Image") != image_id else "changed"
            verb = f"recreated ({changed})"
        elif existing is not None and existing.status == "running":
            return f"{spec.hostname}: running"
        elif existing is not None:
            self.engine.start(existing)
            return f"{spec.hostname}: started"
        else:
            verb = "created"
        container = self.engine.create(spec, image or s.image, s.network, s.deploy_uid)
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
        with self.exclusive("lab down"):
            self._tokens = None
            removed = self.engine.remove_lab()
            # Its own files go with it (keys, known_hosts, inventory): a new lab, new keys.
            shutil.rmtree(self.settings.state, ignore_errors=True)
            return removed

    # -- status ----------------------------------------------------------------------------
    def node_status(self, container: Container) -> NodeStatus:
        """One router node's status, read from its container and its admin API."""
        token = self.tokens.node(container.labels.get("knight.node", container.name))
        return node_status(self.engine, self.settings, token, container)

    def status(self) -> LabStatus:
        s = self.settings
        routers = sorted(
            self.engine.containers(role="router"), key=lambda c: node_key(c.labels["knight.node"])
        )
        nodes = read_fleet(self.node_status, routers, READ_POLICY.workers)
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
        """Put a release's artifact into the lab's artifact repository (idempotent). The ssh
        transport's repository serves dist/releases itself: building the release publishes it."""
        artifact = self.artifact(version)
        if self.transport == "ssh":
            return artifact
        entries = [
            FileEntry(f"{version}/{artifact.tarball.name}", artifact.tarball.read_bytes()),
            FileEntry(f"{version}/manifest.json", artifact.manifest_path.read_bytes()),
        ]
        self.engine.put(
            self._container("artifacts"), "/srv/artifacts", entries, self.settings.deploy_uid
        )
        return artifact
