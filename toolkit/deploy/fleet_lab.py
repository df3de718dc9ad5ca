"""A fleet an inventory declares, as the lab an experiment acts on (`FleetLab`): its routers
reached through the inventory alone, its market where the inventory says (docs/fleets.md).

What an experiment does to a lab it does to this fleet by the same calls, each made with
nothing but ssh to the hosts and HTTP to the admin APIs: deploys, rollbacks, flags and the kill
switch through the playbooks (Ansible over ssh); status, metrics and health over HTTP; a
node's mutating admin calls (kill switch, resume, reload) made on the node by smarsctl over
ssh, with the token that node alone holds; the baseline a run starts from in one smarsctl call
per node; the load generator on the inventory's load host over ssh; the venue's counts from
its admin API with the token in the inventory's token file. It has no Docker engine: asking for
one is a LabError, so no Docker call can hide on this path.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, LabError
from toolkit.guards.sets import GuardSet
from toolkit.lab.admin import AdminClient
from toolkit.lab.engine import Engine
from toolkit.lab.lab import Lab
from toolkit.lab.paths import CONTROL_PIPE, SMARS_ETC
from toolkit.lab.specs import fleet_manifest, json_bytes
from toolkit.releases.artifacts import Artifact
from toolkit.settings import Settings

from .fleet import Fleet, FleetStatus, Market
from .remote import Remote

__all__ = ["FleetAdmin", "FleetLab", "fleet_lab"]

#: How long a node may take to run the baseline again when the reset switches it back: eight
#: routers re-executing at once on a busy two-core machine were seen taking over 15 s.
BASELINE_SWITCH_S = 90

#: What routerd's control pipe takes (router_image/routerd.py, CONTROL_SIGNALS and start).
CONTROL_WORDS = ("stop", "kill", "pause", "cont", "start")

#: A mutating admin call -> the smarsctl command that makes it on the node.
NODE_CALLS = {
    "/kill": "kill",
    "/resume": "resume-trading",
    "/intake/pause": "pause",
    "/intake/resume": "resume",
    "/reload": "reload",
}


def smarsctl(remote: Remote, source: bytes, *args: str, timeout: float = 120.0) -> dict[str, Any]:
    """Run one smarsctl command on the node (the playbooks' helper, sent inline); its answer."""
    code, out = remote.run(["python3", "-", *args], stdin=source, timeout=timeout)
    lines = out.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {"error": out.strip()[-300:]}
    if code != 0 or not isinstance(answer, dict) or "error" in answer:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise LabError(f"{remote.host.name}: smarsctl {args[0]}: {error or out.strip()[-300:]}")
    return answer


class FleetAdmin(AdminClient):
    """A node's admin API through its inventory: reads over HTTP (they need no token), and the
    mutating calls made on the node itself over ssh (NODE_CALLS)."""

    def __init__(self, lab: FleetLab, node: str, timeout: float) -> None:
        host = lab.fleet.inventory.host(node)
        parsed = AdminClient.at(node, host.admin_url, timeout=timeout)
        super().__init__(node, parsed.port, "", timeout=timeout)
        self.base = parsed.base
        self._lab = lab

    def post(self, path: str, body: Any = None) -> Any:
        command = NODE_CALLS.get(path)
        if command is None:
            raise LabError(f"{self.name}: POST {path} is not made through an inventory")
        return self._lab.smarsctl(self.name, command)


class FleetLab(Lab):
    """The routers of an inventory and the market it names, as a lab (see the module)."""

    through_inventory = True

    def __init__(self, fleet: Fleet, guards: GuardSet | None = None) -> None:
        inventory = fleet.inventory
        if inventory.market is None:
            raise ConfigError(
                "no market for an experiment: set knight_venue_url, knight_venue_token_file "
                "and knight_load_host in the vars of group routers (docs/fleets.md)",
                str(inventory.path),
            )
        digest = hashlib.sha256(str(inventory.path).encode()).hexdigest()[:12]
        settings = replace(
            fleet.settings,
            lab=f"inventory-{digest}",
            hosts=tuple(inventory.node_names),
            nodes=len(inventory.hosts),
        )
        super().__init__(settings, guards=guards)
        self.fleet = Fleet(settings, inventory)
        self.market: Market = inventory.market
        self._control: Path | None = None
        self._source: bytes | None = None

    @property
    def engine(self) -> Engine:
        raise LabError(
            f"fleet {self.fleet.inventory_path} is reached through its inventory: knight uses "
            "no Docker engine there"
        )

    @property
    def inventory_path(self) -> Path:
        return self.fleet.inventory_path

    @property
    def transport(self) -> str:
        return "ssh"

    @property
    def secrets(self) -> list[str]:
        """The venue's token: the nodes' own never leave their nodes."""
        return [self.venue_token()]

    def exclusive(self, what: str) -> AbstractContextManager[None]:
        return self.fleet.exclusive(what)

    def check_node(self, node: str) -> None:
        if node not in self.settings.node_names:
            raise LabError(f"{node}: not a host of the inventory {self.inventory_path}")

    # -- reaching the hosts ---------------------------------------------------------------------
    def remote(self, node: str) -> Remote:
        if self._control is None:
            self._control = Path(self.fleet.ansible_env()["ANSIBLE_SSH_CONTROL_PATH_DIR"])
        return Remote(self.fleet.inventory.host(node), self._control)

    def smarsctl(self, node: str, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        if self._source is None:
            self._source = (self.settings.playbooks / "files" / "smarsctl.py").read_bytes()
        return smarsctl(self.remote(node), self._source, *args, timeout=timeout)

    def node_control(self, node: str, word: str) -> None:
        """Say `word` to the node's routerd on its control pipe, as the deploy user (a member
        of the group that may write it): the router is signalled by its own keeper."""
        if word not in CONTROL_WORDS:
            raise LabError(f"{node}: {word!r} is not a word of routerd's control pipe")
        script = 'printf "%s\\n" "$1" > "$2"'
        code, out = self.remote(node).run(
            ["timeout", "10", "sh", "-c", script, "sh", word, CONTROL_PIPE], timeout=60
        )
        if code != 0:
            raise LabError(f"{node}: routerd did not take {word!r}: {out.strip()[-300:]}")

    def reload(self, node: str, times: int = 1) -> None:
        """`times` re-reads in one smarsctl call: one ssh round trip, not `times`."""
        self.check_node(node)
        self.smarsctl(node, "reload", str(times))

    def node_admin(self, node: str, timeout: float = 2.0) -> AdminClient:
        self.check_node(node)
        return FleetAdmin(self, node, timeout)

    def venue_token(self) -> str:
        try:
            return self.market.venue_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"knight_venue_token_file: cannot read it ({exc.strerror})",
                str(self.market.venue_token_file),
            ) from None

    def venue_admin(self, timeout: float = 5.0) -> AdminClient:
        return AdminClient.at("venue", self.market.venue_url, self.venue_token(), timeout)

    # -- the load generator, on the load host -----------------------------------------------
    def has_client(self) -> bool:
        return True

    def client_exec(self, argv: list[str]) -> tuple[int, str]:
        return self.remote(self.market.load_host).run(argv)

    def client_exec_stream(
        self, argv: list[str], on_stderr: Callable[[str], None] | None
    ) -> tuple[int, bytes]:
        return self.remote(self.market.load_host).stream(argv, on_stderr)

    def order_address(self, node: str) -> str:
        host = self.fleet.inventory.host(node)
        return host.variables.get("knight_order_address", f"{node}:{self.settings.order_port}")

    # -- status, releases, settings ------------------------------------------------------------
    def status(self) -> FleetStatus:  # type: ignore[override]
        return self.fleet.status()

    def publish(self, version: str) -> Artifact:
        return self.fleet.publish(version)[0]

    def up(self, progress: Callable[[str], None] | None = None, timeout: float = 60.0) -> Any:
        raise LabError(f"fleet {self.inventory_path}: its owners bring it up, not knight")

    def down(self) -> dict[str, int]:
        raise LabError(f"fleet {self.inventory_path}: its owners take it down, not knight")

    def write_flags_file(self, node: str, content: bytes) -> None:
        self.check_node(node)
        self.remote(node).put(f"{SMARS_ETC}/flags.json", content)

    def set_guards(self, guards: GuardSet) -> None:
        self.guards = guards
        content = json_bytes(guards.router_file())

        def one(node: str) -> None:
            self.remote(node).put(f"{SMARS_ETC}/guards.json", content)
            self.smarsctl(node, "reload")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.settings.node_names))

    def wait_healthy(
        self, timeout: float = 60.0, progress: Callable[[str], None] | None = None
    ) -> None:
        """Wait until the venue and every node of the fleet answer healthy."""
        deadline = time.monotonic() + timeout
        while True:
            sick = [n.name for n in self.status().nodes if not n.healthy]
            try:
                venue = self.venue_admin(timeout=2.0).request("GET", "/health", auth=False)
                if venue.status != 200:
                    sick.append("venue")
            except LabError:
                sick.append("venue")
            if not sick:
                return
            if time.monotonic() >= deadline:
                raise LabError(f"not healthy after {timeout:.0f}s: {', '.join(sick)}")
            time.sleep(0.25)

    def _reset(self, guards: GuardSet | None) -> None:
        """Every node on the baseline (one smarsctl call each, all at once), a new venue run."""
        if guards is not None:
            self.guards = guards
        base = self.catalog.baseline
        artifact, url = self.fleet.publish(base)
        manifest = fleet_manifest(artifact)
        args = (
            *(base, artifact.tree, artifact.manifest["artifact_sha256"], url),
            str(manifest["epoch"]),
            json.dumps(self.guards.router_file(), sort_keys=True),
            json.dumps(self.baseline_flags(), sort_keys=True),
        )

        def one(node: str) -> None:
            self.smarsctl(node, "baseline", *args, str(BASELINE_SWITCH_S), timeout=300.0)

        with ThreadPoolExecutor(max_workers=min(16, len(self.settings.node_names))) as pool:
            list(pool.map(one, self.settings.node_names))
        self.venue_admin().post("/reset", {})


def fleet_lab(
    inventory: Path | str, settings: Settings, guards: GuardSet | None = None
) -> FleetLab:
    """The FleetLab of the inventory at `inventory` (checked whole first)."""
    return FleetLab(Fleet.from_inventory(inventory, settings), guards)
