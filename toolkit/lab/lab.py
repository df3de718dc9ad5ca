"""The lab: a labelled network, the venue, the client and the router nodes `smars-1..N`.

`up` is idempotent (it creates what is missing, starts what is stopped, leaves what runs);
`down` removes everything that carries the lab's label. The lab also offers the low-level
primitives a baseline needs — install a release on a node, write its flags — which the Ansible
deploy (the real path) does not use.
"""

from __future__ import annotations

import json
import secrets
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from docker.models.containers import Container

from toolkit.errors import LabError
from toolkit.guards.sets import GuardSet, default_guards
from toolkit.releases.artifacts import Artifact, build
from toolkit.releases.catalog import Catalog, load_catalog
from toolkit.settings import Settings, load_settings

from .admin import AdminClient
from .engine import ContainerSpec, Engine, FileEntry

__all__ = ["Lab", "LabStatus", "NodeStatus"]

Progress = Callable[[str], None]

#: Paths inside a router container (docs/protocol.md, "Node layout").
SMARS_HOME = "/opt/smars"
SMARS_ETC = "/etc/smars"
PID_FILE = "/run/smars/router.pid"
PENDING_FILE = "/var/lib/smars/switch.pending"


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


def _node_number(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])


class Lab:
    """One lab on the local Docker engine."""

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

    def baseline_flags(self) -> dict[str, dict[str, Any]]:
        """Every flag the baseline release reads, off, with the meaning its code gives it."""
        base = self.catalog.get(self.catalog.baseline)
        return {
            name: {"value": False, "meaning": meaning}
            for name, meaning in sorted(base.flags.items())
        }

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

    # -- specs -----------------------------------------------------------------------------
    def _labels(self, role: str, node: str | None = None) -> dict[str, str]:
        labels = {"knight.role": role}
        if node:
            labels["knight.node"] = node
        return labels

    def _release_entries(self, artifact: Artifact) -> list[FileEntry]:
        """The artifact's files, placed under `releases/<version>/`."""
        entries = []
        with tarfile.open(artifact.tarball, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    entries.append(
                        FileEntry(f"releases/{artifact.version}/{member.name}", data, 0o644)
                    )
        return entries

    def _router_spec(self, node: str, artifact: Artifact) -> ContainerSpec:
        s = self.settings
        config = {"node": node, "venue": f"venue:{s.venue_port}"}
        flags = {"flags": self.baseline_flags()}
        return ContainerSpec(
            name=s.container(node),
            hostname=node,
            command=["router"],
            labels=self._labels("router", node),
            env={"SMARS_ADMIN_TOKEN": self.token, "SMARS_NODE": node},
            ports=(s.order_port, s.admin_port),
            aliases=(node,),
            files=[
                (
                    SMARS_HOME,
                    [
                        *self._release_entries(artifact),
                        FileEntry("current", target=f"releases/{artifact.version}"),
                    ],
                ),
                (
                    SMARS_ETC,
                    [
                        FileEntry("router.json", _json_bytes(config)),
                        FileEntry("flags.json", _json_bytes(flags)),
                        FileEntry("guards.json", _json_bytes(self.guards.router_file())),
                        FileEntry("fleet.json", _json_bytes(self.manifest(artifact))),
                    ],
                ),
            ],
        )

    def _venue_spec(self) -> ContainerSpec:
        s = self.settings
        return ContainerSpec(
            name=s.container("venue"),
            hostname="venue",
            command=["venue", "--cap", str(s.venue_cap)],
            labels=self._labels("venue"),
            env={"VENUE_ADMIN_TOKEN": self.token},
            ports=(s.venue_port, s.venue_admin_port),
            aliases=("venue",),
        )

    def _artifacts_spec(self) -> ContainerSpec:
        s = self.settings
        return ContainerSpec(
            name=s.container("artifacts"),
            hostname="artifacts",
            command=["artifacts"],
            labels=self._labels("artifacts"),
            aliases=("artifacts",),
        )

    def _client_spec(self) -> ContainerSpec:
        s = self.settings
        return ContainerSpec(
            name=s.container("client"),
            hostname="client",
            command=["client"],
            labels=self._labels("client"),
            aliases=("client",),
        )

    # -- up / down -------------------------------------------------------------------------
    def up(self, progress: Progress | None = None, timeout: float = 60.0) -> LabStatus:
        """Bring the lab up: create what is missing, start what is stopped; wait until healthy."""
        say = progress or (lambda _msg: None)
        s = self.settings
        if not self.engine.image_exists(s.image):
            raise LabError(f"the lab image {s.image} is missing: build it with `make image`")
        image_id = self.engine.client.images.get(s.image).id
        artifact = self.artifact(self.catalog.baseline)
        self.engine.ensure_network(s.network)
        specs = [self._venue_spec(), self._client_spec(), self._artifacts_spec()]
        specs += [self._router_spec(node, artifact) for node in s.node_names]

        def ensure(spec: ContainerSpec) -> str:
            existing = self.engine.get(spec.name)
            if existing is not None and existing.attrs.get("Image") != image_id:
                existing.remove(force=True)
                existing = None
                verb = "recreated (new image)"
            elif existing is not None and existing.status == "running":
                return f"{spec.hostname}: running"
            elif existing is not None:
                existing.start()
                return f"{spec.hostname}: started"
            else:
                verb = "created"
            container = self.engine.create(spec, s.image, s.network, s.uid)
            container.start()
            return f"{spec.hostname}: {verb}"

        # The venue first: routers connect to it as they start.
        say(ensure(specs[0]))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for line in pool.map(ensure, specs[1:]):
                say(line)
        self.wait_healthy(timeout=timeout, progress=say)
        return self.status()

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
        name = container.labels.get("knight.node", container.name)
        st = NodeStatus(name=name, container=container.name, state=container.status)
        if container.status != "running":
            st.error = f"container {container.status}"
            return st
        try:
            admin = AdminClient(
                name,
                self.engine.host_port(container, self.settings.admin_port),
                self.token,
                timeout=1.5,
            )
            version = admin.get("/version")
            health = admin.request("GET", "/health", auth=False)
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

    def status(self) -> LabStatus:
        s = self.settings
        routers = sorted(
            self.engine.containers(role="router"),
            key=lambda c: _node_number(c.labels["knight.node"]),
        )
        with ThreadPoolExecutor(max_workers=8) as pool:
            nodes = list(pool.map(self.node_status, routers))
        return LabStatus(
            lab=s.lab,
            network=s.network,
            image=s.image,
            venue=self._venue_status(),
            client=self._plain_status("client"),
            artifacts=self._plain_status("artifacts"),
            nodes=nodes,
        )

    def _plain_status(self, role: str) -> dict[str, Any]:
        c = self.engine.get(self.settings.container(role))
        return {"container": self.settings.container(role), "state": c.status if c else "missing"}

    def _venue_status(self) -> dict[str, Any]:
        info = self._plain_status("venue")
        info["healthy"] = False
        if info["state"] != "running":
            return info
        try:
            stats = self.venue_admin(timeout=1.5).get("/stats")
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
    #: Where nodes download releases from during a deploy (the lab's artifact repository).
    ARTIFACT_URL = "http://artifacts:8080"

    def publish(self, version: str) -> Artifact:
        """Put a release's artifact into the lab's artifact repository (idempotent)."""
        artifact = self.artifact(version)
        entries = [
            FileEntry(f"{version}/{artifact.tarball.name}", artifact.tarball.read_bytes()),
            FileEntry(f"{version}/manifest.json", artifact.manifest_path.read_bytes()),
        ]
        self.engine.put(self._container("artifacts"), "/srv/artifacts", entries, self.settings.uid)
        return artifact

    # -- baseline primitives ---------------------------------------------------------------
    def install_release(self, node: str, version: str, timeout: float = 20.0) -> dict[str, Any]:
        """Put a release on one node and switch to it (symlink flip + SIGUSR2); wait until it runs."""
        self.check_node(node)
        artifact = self.artifact(version)
        container = self._container(node)
        code, _ = self.engine.exec(
            container, ["test", "-f", f"{SMARS_HOME}/releases/{version}/release.json"]
        )
        if code != 0:
            self.engine.put(
                container, SMARS_HOME, self._release_entries(artifact), self.settings.uid
            )
        flip = (
            f"ln -sfn releases/{version} {SMARS_HOME}/current.new && "
            f"mv -Tf {SMARS_HOME}/current.new {SMARS_HOME}/current && "
            f'kill -USR2 "$(cat {PID_FILE})"'
        )
        code, out = self.engine.exec(container, ["sh", "-c", flip])
        if code != 0:
            raise LabError(f"{node}: switch to {version} failed: {out.strip()}")
        return self.wait_running(node, artifact.tree, timeout)

    def wait_uniform(self, timeout: float = 30.0) -> dict[str, str | None]:
        """Wait until every node runs one release (a node may still be undoing an unconfirmed
        switch); returns node -> release as it stands when uniform or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            releases = {n.name: n.release for n in self.status().nodes}
            if len(set(releases.values())) == 1 or time.monotonic() >= deadline:
                return releases
            time.sleep(0.25)

    def wait_running(self, node: str, tree: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until a node's /version reports `tree` (the code it runs) and it is healthy."""
        admin = self.node_admin(node, timeout=1.0)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = admin.get("/version")
                if (
                    last.get("tree") == tree
                    and admin.request("GET", "/health", auth=False).status == 200
                ):
                    return last
            except LabError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise LabError(f"{node}: not running tree {tree[:12]} after {timeout:.0f}s (last: {last})")

    def set_flags(
        self, node: str, flags: dict[str, dict[str, Any]], reload: bool = True
    ) -> dict[str, Any]:
        """Write a node's flags file as given (raw entries) and make it re-read it."""
        self.check_node(node)
        self.write_flags_file(node, _json_bytes({"flags": flags}))
        return self.node_admin(node).post("/reload") if reload else {}

    def write_flags_file(self, node: str, content: bytes) -> None:
        """Replace a node's flags file with exactly these bytes (tests feed it malformed ones)."""
        self.engine.put(
            self._container(node), SMARS_ETC, [FileEntry("flags.json", content)], self.settings.uid
        )

    @staticmethod
    def manifest(artifact: Artifact, epoch: int | None = None) -> dict[str, Any]:
        """The fleet manifest for a fleet that runs `artifact` (guard 2, fencing)."""
        return {
            "release": artifact.version,
            "tree": artifact.tree,
            "epoch": epoch if epoch is not None else time.time_ns() // 1_000_000,
        }

    def set_guards(self, guards: GuardSet) -> None:
        """Switch the routers' own guards (fencing, flags, risk) on every node, at once."""
        self.guards = guards
        content = _json_bytes(guards.router_file())

        def one(node: str) -> None:
            self.engine.put(
                self._container(node),
                SMARS_ETC,
                [FileEntry("guards.json", content)],
                self.settings.uid,
            )
            self.node_admin(node).post("/reload")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.settings.node_names))

    def reset(self, guards: GuardSet | None = None) -> None:
        """Put every node back on the baseline: release, flags, fleet manifest, guard switches,
        trading and intake; new venue run."""
        base = self.catalog.baseline
        artifact = self.artifact(base)
        tree = artifact.tree
        if guards is not None:
            self.guards = guards
        manifest = _json_bytes(self.manifest(artifact))
        router_guards = _json_bytes(self.guards.router_file())
        for container in self.engine.containers():
            if container.status == "paused":  # left behind by a fault
                container.unpause()
        self.up()

        def one(node: str) -> None:
            # A marker left by a failed deploy would make the node undo a switch later on.
            self.engine.exec(self._container(node), ["rm", "-f", PENDING_FILE])
            admin = self.node_admin(node)
            # The kill switch cancels every working parent (Power Peg's never end by
            # themselves), then trading resumes on a clean book.
            admin.post("/kill")
            admin.post("/resume")
            admin.post("/intake/resume")
            self.engine.put(
                self._container(node),
                SMARS_ETC,
                [FileEntry("fleet.json", manifest), FileEntry("guards.json", router_guards)],
                self.settings.uid,
            )
            self.set_flags(node, self.baseline_flags())
            if admin.get("/version").get("tree") != tree:
                self.install_release(node, base)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.settings.node_names))
        self.venue_admin().post("/reset", {})


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
