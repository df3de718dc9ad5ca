"""The baseline primitives: put a release, flags, guards and a fleet manifest on the nodes directly
and wait for them to run it. `Lab` inherits them; the Ansible deploy (the real path) does not use them.

Like a deploy, they write as the deploy user (`Settings.deploy_uid`), who owns a node's releases
and settings; only the signal that makes the router switch is sent as the router's own user, the
one user that may signal it (no container has CAP_KILL)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from toolkit.errors import LabError
from toolkit.guards.sets import GuardSet
from toolkit.releases.artifacts import Artifact
from toolkit.settings import Settings

from .engine import FileEntry
from .paths import PENDING_FILE, PID_FILE, SMARS_ETC, SMARS_HOME
from .specs import fleet_manifest, json_bytes, release_entries

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from docker.models.containers import Container

    from toolkit.releases.catalog import Catalog

    from .admin import AdminClient
    from .engine import Engine
    from .status import LabStatus

__all__ = ["BaselinePrimitives"]


class BaselinePrimitives:
    """What `Lab` does to put nodes on a baseline; it relies on the lab's plumbing (engine,
    catalog, admin clients, containers) and on `up` and `status`."""

    settings: Settings
    #: The guards the routers are given when created or reset (see set_guards).
    guards: GuardSet

    if TYPE_CHECKING:  # provided by Lab

        @property
        def engine(self) -> Engine: ...

        @property
        def catalog(self) -> Catalog: ...

        def artifact(self, version: str) -> Artifact: ...

        def check_node(self, node: str) -> None: ...

        def node_admin(self, node: str, timeout: float = 2.0) -> AdminClient: ...

        def venue_admin(self, timeout: float = 5.0) -> AdminClient: ...

        def _container(self, role_or_node: str) -> Container: ...

        def up(self) -> LabStatus: ...

        def exclusive(self, what: str) -> AbstractContextManager[None]: ...

        def status(self) -> LabStatus: ...

    def baseline_flags(self) -> dict[str, dict[str, Any]]:
        """Every flag the baseline release reads, off, with the meaning its code gives it."""
        base = self.catalog.get(self.catalog.baseline)
        return {
            name: {"value": False, "meaning": meaning}
            for name, meaning in sorted(base.flags.items())
        }

    def install_release(self, node: str, version: str, timeout: float = 20.0) -> dict[str, Any]:
        """Put a release on one node and switch to it (symlink flip + SIGUSR2); wait until it runs."""
        self.check_node(node)
        s = self.settings
        artifact = self.artifact(version)
        container = self._container(node)
        code, _ = self.engine.exec(
            container, ["test", "-f", f"{SMARS_HOME}/releases/{version}/release.json"]
        )
        if code != 0:
            self.engine.put(container, SMARS_HOME, release_entries(artifact), s.deploy_uid)
        flip = (
            f"ln -sfn releases/{version} {SMARS_HOME}/current.new && "
            f"mv -Tf {SMARS_HOME}/current.new {SMARS_HOME}/current"
        )
        signal = f'kill -USR2 "$(cat {PID_FILE})"'
        for user, script in ((s.deploy_user, flip), (str(s.uid), signal)):
            code, out = self.engine.exec(container, ["sh", "-c", script], user=user)
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
        self.write_flags_file(node, json_bytes({"flags": flags}))
        return self.node_admin(node).post("/reload") if reload else {}

    def write_flags_file(self, node: str, content: bytes) -> None:
        """Replace a node's flags file with exactly these bytes (tests feed it malformed ones)."""
        self.engine.put(
            self._container(node),
            SMARS_ETC,
            [FileEntry("flags.json", content)],
            self.settings.deploy_uid,
        )

    @staticmethod
    def manifest(artifact: Artifact, epoch: int | None = None) -> dict[str, Any]:
        """The fleet manifest for a fleet that runs `artifact` (guard 2, fencing)."""
        return fleet_manifest(artifact, epoch)

    def set_guards(self, guards: GuardSet) -> None:
        """Switch the routers' own guards (fencing, flags, risk) on every node, at once."""
        self.guards = guards
        content = json_bytes(guards.router_file())

        def one(node: str) -> None:
            self.engine.put(
                self._container(node),
                SMARS_ETC,
                [FileEntry("guards.json", content)],
                self.settings.deploy_uid,
            )
            self.node_admin(node).post("/reload")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.settings.node_names))

    def reset(self, guards: GuardSet | None = None) -> None:
        """Put every node back on the baseline: release, flags, fleet manifest, guard switches,
        trading and intake; new venue run. Under the lab lock (LabBusy while another process
        deploys or experiments)."""
        with self.exclusive("lab reset"):
            self._reset(guards)

    def _reset(self, guards: GuardSet | None) -> None:
        base = self.catalog.baseline
        artifact = self.artifact(base)
        tree = artifact.tree
        if guards is not None:
            self.guards = guards
        manifest = json_bytes(self.manifest(artifact))
        router_guards = json_bytes(self.guards.router_file())
        for container in self.engine.containers():
            if container.status == "paused":  # left behind by a fault
                self.engine.unpause(container)
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
                self.settings.deploy_uid,
            )
            self.set_flags(node, self.baseline_flags())
            if admin.get("/version").get("tree") != tree:
                self.install_release(node, base)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.settings.node_names))
        self.venue_admin().post("/reset", {})
