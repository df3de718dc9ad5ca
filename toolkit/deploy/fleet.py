"""A fleet: the router nodes a command reaches, as one object, through one Ansible inventory.

The lab's own fleet (`Fleet.of_lab`: its inventory rendered for its transport, its status read
through Docker, its artifacts published into its repository) and a fleet any inventory declares
(`Fleet.from_inventory`: a staging fleet, or the ssh lab through `knight lab inventory`) are the
same object to the deploy, the rollback, flags and the kill switch. Through an inventory knight
needs nothing but ssh to the hosts (Ansible) and HTTP to their admin ports (status); the
release is built locally and fetched by the nodes from the inventory's `artifact_base_url`.

An inventory is checked whole before anything runs: the fleet group with its hosts, every
variable the playbooks and knight need, each value against a strict pattern. What is wrong is
one ConfigError (exit 2) naming the file, the line and the host.
"""

from __future__ import annotations

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError, LabError
from toolkit.lab import lock
from toolkit.lab.admin import AdminClient
from toolkit.lab.lab import Lab
from toolkit.lab.status import NodeStatus
from toolkit.releases.artifacts import Artifact, build
from toolkit.releases.catalog import Catalog, load_catalog
from toolkit.settings import Settings, node_key
from toolkit.yamlfile import Mapping, load_yaml, where

from .inventory import FLEET_GROUP, lab_inventory_path
from .patterns import NODE_NAME, URL

__all__ = [
    "Fleet",
    "FleetHost",
    "FleetStatus",
    "Inventory",
    "Market",
    "as_fleet",
    "load_inventory",
]

#: A host name or an IPv4 address (ansible_host).
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
#: A login name (ansible_user).
USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
#: A file on the controller: plain characters, `~` first at most (ssh and Ansible expand it).
PATH = re.compile(r"~?[A-Za-z0-9._/-]{1,255}")
#: ssh options as `-o Name=value`, values of plain characters: no ProxyCommand-like shell word.
SSH_ARGS = re.compile(r"-o [A-Za-z]+=~?[A-Za-z0-9._/,@:+-]+( -o [A-Za-z]+=~?[A-Za-z0-9._/,@:+-]+)*")
PORT = re.compile(r"[1-9][0-9]{0,4}")
#: host:port (knight_order_address).
ADDRESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[1-9][0-9]{0,4}")

#: Every variable an inventory of a fleet may set: what it is, its pattern, and whether every
#: host must have it (itself or from its group). A variable without a rule is refused.
VARIABLES: dict[str, tuple[str, re.Pattern[str], bool]] = {
    "ansible_host": ("the address Ansible reaches the node at", HOST, False),
    "ansible_port": ("its ssh port", PORT, False),
    "ansible_connection": (
        "the connection",
        re.compile(r"ssh|community\.docker\.docker"),
        False,
    ),
    "ansible_user": ("the deploy user", USER, True),
    "ansible_python_interpreter": ("python3 on the node", PATH, False),
    "ansible_ssh_private_key_file": ("the deploy user's key", PATH, False),
    "ansible_ssh_common_args": ("ssh options", SSH_ARGS, False),
    "smars_admin_url": ("the node's admin API, for its peers", URL, True),
    "knight_admin_url": ("the node's admin API, for knight", URL, False),
    "artifact_base_url": ("where nodes download releases", URL, True),
    # The market an experiment needs (optional; docs/fleets.md): the venue it measures at, and
    # the host the load generator runs on. One value for the whole fleet each.
    "knight_venue_url": ("the venue's admin API, for knight", URL, False),
    "knight_venue_token_file": ("the file on the controller with the venue's token", PATH, False),
    "knight_load_host": ("the host of the fleet the load generator runs on", NODE_NAME, False),
    "knight_order_address": ("the node's order port, for the load generator", ADDRESS, False),
}
#: The market's variables: all of them, or none (then the fleet takes no experiment).
MARKET_VARIABLES = ("knight_venue_url", "knight_venue_token_file", "knight_load_host")


@dataclass(frozen=True)
class FleetHost:
    """One node of a fleet: its inventory name, and where knight reaches its admin API
    (knight_admin_url, else smars_admin_url)."""

    name: str
    admin_url: str
    variables: dict[str, str]


@dataclass(frozen=True)
class Market:
    """Where an experiment on a fleet finds its market: the venue's admin API (and the file
    holding its token) as knight reaches it, and the fleet host the load generator runs on."""

    venue_url: str
    venue_token_file: Path
    load_host: str


@dataclass(frozen=True)
class Inventory:
    """A checked inventory of one fleet (the group FLEET_GROUP)."""

    path: Path
    hosts: tuple[FleetHost, ...]
    artifact_base_url: str
    #: The market an experiment needs, when the inventory declares one.
    market: Market | None = None

    def host(self, name: str) -> FleetHost:
        return next(h for h in self.hosts if h.name == name)

    @property
    def node_names(self) -> list[str]:
        return [h.name for h in self.hosts]


def _inventory_file(path: Path) -> Path:
    """The YAML file of an inventory given as a file, or as a folder holding hosts.yml."""
    if path.is_dir():
        for name in ("hosts.yml", "hosts.yaml"):
            if (path / name).is_file():
                return path / name
        raise ConfigError("an inventory folder needs a hosts.yml", str(path))
    if not path.is_file():
        raise ConfigError("inventory not found", str(path))
    return path


def _fleet_group(doc: Any, file: Path) -> Mapping:
    group = (
        doc.get("all", {}).get("children", {}).get(FLEET_GROUP) if isinstance(doc, dict) else None
    )
    if (
        not isinstance(group, dict)
        or not isinstance(group.get("hosts"), dict)
        or not group["hosts"]
    ):
        raise ConfigError(
            f"no hosts in group {FLEET_GROUP!r} (all: children: {FLEET_GROUP}: hosts:): "
            "the fleet a deploy must reach",
            str(file),
            where(doc),
        )
    return group


def _check_value(file: Path, node: str, name: str, value: Any, line: int | None) -> str:
    rule = VARIABLES.get(name)
    if rule is None:
        known = ", ".join(VARIABLES)
        raise ConfigError(
            f"{node}: variable {name!r} is not one knight knows ({known})", str(file), line
        )
    what, pattern, _ = rule
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not pattern.fullmatch(text):
        shown = repr(value) if len(repr(value)) <= 72 else repr(value)[:69] + "..."
        raise ConfigError(f"{node}: {name} ({what}) {shown} is not valid", str(file), line)
    return text


def _host(file: Path, name: Any, entry: Any, group_vars: Mapping, line: int | None) -> FleetHost:
    if not isinstance(name, str) or not NODE_NAME.fullmatch(name):
        raise ConfigError(f"host name {name!r} is not valid: expected a host name", str(file), line)
    entry = entry if entry is not None else Mapping()
    if not isinstance(entry, dict):
        raise ConfigError(f"{name}: expected a mapping of variables", str(file), line)
    variables: dict[str, str] = {}
    for source in (group_vars, entry):
        for key, value in source.items():
            variables[key] = _check_value(file, name, key, value, where(source, key))
    for key, (what, _, required) in VARIABLES.items():
        if required and key not in variables:
            raise ConfigError(f"{name}: no {key} ({what})", str(file), line)
    admin = variables.get("knight_admin_url", variables["smars_admin_url"])
    return FleetHost(name, admin, variables)


def load_inventory(path: Path | str) -> Inventory:
    """Read and check an inventory (a YAML file, or a folder with hosts.yml)."""
    file = _inventory_file(Path(path))
    doc = load_yaml(file)
    group = _fleet_group(doc, file)
    group_vars = group.get("vars") or Mapping()
    if not isinstance(group_vars, dict):
        raise ConfigError(f"{FLEET_GROUP}: vars must be a mapping", str(file), where(group, "vars"))
    hosts = tuple(
        _host(file, name, entry, group_vars, where(group["hosts"], name))
        for name, entry in group["hosts"].items()
    )
    bases = _one_value(file, hosts, "artifact_base_url")
    return Inventory(file.resolve(), hosts, str(bases).rstrip("/"), _market(file, hosts))


def _one_value(file: Path, hosts: tuple[FleetHost, ...], name: str) -> str | None:
    """The one value every host has for `name` (None: no host has one); else ConfigError."""
    values = {h.variables.get(name) for h in hosts}
    if len(values) != 1:
        shown = ", ".join(sorted(str(v) for v in values))
        raise ConfigError(f"one {name} for the whole fleet, not {len(values)}: {shown}", str(file))
    return values.pop()


def _market(file: Path, hosts: tuple[FleetHost, ...]) -> Market | None:
    """The market the inventory declares: every one of MARKET_VARIABLES, or none of them."""
    values = {name: _one_value(file, hosts, name) for name in MARKET_VARIABLES}
    given = [name for name, value in values.items() if value is not None]
    if not given:
        return None
    if len(given) != len(values):
        missing = ", ".join(n for n in MARKET_VARIABLES if n not in given)
        raise ConfigError(
            f"{FLEET_GROUP}: a market needs {', '.join(MARKET_VARIABLES)} together; no {missing}",
            str(file),
        )
    load_host = str(values["knight_load_host"])
    if load_host not in {h.name for h in hosts}:
        raise ConfigError(
            f"knight_load_host {load_host!r} is not a host of group {FLEET_GROUP}", str(file)
        )
    token = Path(str(values["knight_venue_token_file"])).expanduser()
    return Market(str(values["knight_venue_url"]).rstrip("/"), token, load_host)


@dataclass
class FleetStatus:
    """A fleet's nodes as their admin APIs answer (the `nodes` of `knight lab status --json`)."""

    inventory: str
    nodes: list[NodeStatus]

    @property
    def up(self) -> bool:
        return bool(self.nodes) and all(n.healthy for n in self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory,
            "up": self.up,
            "nodes": [asdict(n) for n in self.nodes],
        }


def read_node(host: FleetHost, timeout: float = 3.0) -> NodeStatus:
    """One node's status from its admin API (no token: /version and /health are open)."""
    st = NodeStatus(
        name=host.name, container=host.variables.get("ansible_host", host.name), state="unreachable"
    )
    admin = AdminClient.at(host.name, host.admin_url, timeout=timeout)
    try:
        version = admin.get("/version")
        health = admin.request("GET", "/health", auth=False)
    except LabError as exc:
        st.error = str(exc)
        return st
    st.state = "reachable"
    for key in ("release", "tree", "trading", "intake", "config_hash", "flags_error"):
        setattr(st, key, version.get(key))
    st.flags = version.get("flags") or {}
    st.healthy = health.status == 200
    if not st.healthy:
        st.error = f"unhealthy: {health.body}"
    return st


class Fleet:
    """The router nodes one command reaches, through one inventory."""

    def __init__(self, settings: Settings, inventory: Inventory, lab: Lab | None = None) -> None:
        self.settings = settings
        self.inventory = inventory
        #: The lab this fleet is, when it is a lab's own (its status then comes through Docker).
        self.lab = lab
        self._catalog: Catalog | None = lab.catalog if lab is not None else None

    @classmethod
    def of_lab(cls, lab: Lab) -> Fleet:
        return cls(lab.settings, load_inventory(lab_inventory_path(lab)), lab)

    @classmethod
    def from_inventory(cls, path: Path | str, settings: Settings) -> Fleet:
        return cls(settings, load_inventory(path))

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog(self.settings.catalog_path, self.settings.router_source)
        return self._catalog

    @property
    def inventory_path(self) -> Path:
        return self.inventory.path

    @property
    def node_names(self) -> list[str]:
        return self.inventory.node_names

    def check_node(self, node: str) -> None:
        if node not in self.node_names:
            raise ConfigError(
                f"{node}: not a host of group {FLEET_GROUP}", str(self.inventory_path)
            )

    def exclusive(self, what: str) -> AbstractContextManager[None]:
        """One mutating operation at a time: the lab's lock, or one per inventory file."""
        if self.lab is not None:
            return self.lab.exclusive(what)
        digest = hashlib.sha256(str(self.inventory_path).encode()).hexdigest()[:12]
        path = self.settings.lock_path.with_name(f"inventory-{digest}.lock")
        return lock.exclusive(f"inventory {self.inventory_path}", path, what)

    def status(self) -> Any:
        """Each node's release, tree, flags, health and trading state (a LabStatus for a lab's
        own fleet, else a FleetStatus)."""
        if self.lab is not None:
            return self.lab.status()
        with ThreadPoolExecutor(max_workers=min(16, len(self.inventory.hosts))) as pool:
            nodes = list(pool.map(read_node, self.inventory.hosts))
        return FleetStatus(str(self.inventory_path), sorted(nodes, key=lambda n: node_key(n.name)))

    def publish(self, version: str) -> tuple[Artifact, str]:
        """A release's artifact, and the URL nodes download it from (under the inventory's
        artifact_base_url). A lab puts it into its repository; for any other fleet it is built
        into dist/releases, from where it is uploaded to the fleet's artifact store."""
        if self.lab is not None:
            artifact = self.lab.publish(version)
        else:
            artifact = build(self.catalog, version, self.settings.router_source, self.settings.dist)
        return artifact, f"{self.inventory.artifact_base_url}/{version}/{artifact.tarball.name}"

    def ansible_env(self) -> dict[str, str]:
        """What Ansible runs with for this fleet: host keys checked whatever the user's own
        configuration says, and ControlPersist sockets in a folder of this inventory's own (with
        the known_hosts it names), so that a connection opened under other pinned keys is never
        reused."""
        seen = self.inventory_path.read_bytes()
        for host in self.inventory.hosts:
            args = host.variables.get("ansible_ssh_common_args", "")
            for known in re.findall(r"UserKnownHostsFile=(\S+)", args):
                file = Path(known).expanduser()
                seen += file.read_bytes() if file.is_file() else known.encode()
        base = self.settings.ssh_control_dir
        base.mkdir(mode=0o700, exist_ok=True)
        base.chmod(0o700)
        folder = base / hashlib.sha256(seen).hexdigest()[:12]
        folder.mkdir(mode=0o700, exist_ok=True)
        return {"ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(folder)}


def as_fleet(target: Lab | Fleet) -> Fleet:
    """A fleet, from a lab (its own fleet), a fleet's lab (toolkit/deploy/fleet_lab.py: the
    fleet its inventory declares), or a fleet already."""
    if isinstance(target, Fleet):
        return target
    own = getattr(target, "fleet", None)  # a FleetLab's: never rendered from Docker's state
    return own if isinstance(own, Fleet) else Fleet.of_lab(target)
