"""Where things are and what they are called: the one place for paths, names and lab-wide values.

Everything can be overridden from the environment, so a test run, CI and a person's own lab can
live side by side on one Docker engine (`KNIGHT_LAB=knight-test`).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "LABEL",
    "TRANSPORTS",
    "Settings",
    "default_forks",
    "load_settings",
    "node_key",
    "settings_for_lab",
]

#: Label carried by every container, network and volume of a lab; its value is the lab's name.
LABEL = "knight.lab"

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# A checkout runs knight from its own folder; an installed knight (a wheel in site-packages)
# works where it is run from, and finds a checkout through KNIGHT_HOME.
_ROOT = _PACKAGE_PARENT if (_PACKAGE_PARENT / "playbooks").is_dir() else Path.cwd()
_LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: How the host reaches a lab's nodes: `docker exec` (the default), or ssh to a port per node.
TRANSPORTS = ("docker", "ssh")


@dataclass(frozen=True)
class Settings:
    """Paths and names for one lab."""

    root: Path = _ROOT
    lab: str = "knight"
    nodes: int = 8
    image: str = "knight-lab:latest"
    base_image: str = "knight-base:bookworm"
    #: When set, the lab image is built FROM this image instead of the locally built base.
    base_image_override: str | None = None
    debian_suite: str = "bookworm"
    venue_cap: int = 500_000
    #: How many nodes Ansible works on at once (KNIGHT_FORKS; ansible-runner's `forks`). The
    #: guarded deploy does not need the fleet inside one batch, so this is only a matter of
    #: speed: see `default_forks` and docs/scaling.md.
    forks: int = 16
    #: Who every container's process runs as (the router in a node): it may write only its own
    #: state (/var/lib/smars, /run/smars) and the `current` link.
    uid: int = 10001
    #: Who deploys: owns a node's releases and settings (/opt/smars, /etc/smars). The lab writes
    #: files as this user and Ansible connects as it (the image's `smars-deploy`).
    deploy_uid: int = 10002
    deploy_user: str = "smars-deploy"
    order_port: int = 7001
    admin_port: int = 8001
    venue_port: int = 9000
    venue_admin_port: int = 9100
    #: How the lab's nodes are reached (TRANSPORTS); None: as the lab already runs, else docker.
    transport: str | None = None
    #: The port each node's sshd listens on inside its container (ssh transport); unprivileged,
    #: so that sshd needs no capability to bind it.
    ssh_port: int = 2222
    #: The router nodes by name, when they are the hosts an inventory declares rather than the
    #: lab's `smars-1..nodes` (an experiment run through `--inventory`).
    hosts: tuple[str, ...] | None = None

    def checkout(self, *parts: str) -> Path:
        """A path of the knight checkout (router_image/, playbooks/, experiments/, flags.yaml):
        a ConfigError in one line when `root` is not a checkout (an installed knight run
        elsewhere: KNIGHT_HOME names the checkout)."""
        path = self.root.joinpath(*parts)
        if not path.exists():
            raise ConfigError(
                f"{'/'.join(parts)} not found under {self.root}: this command needs a knight "
                "checkout (run it from one, or set KNIGHT_HOME to one)"
            )
        return path

    @property
    def catalog_path(self) -> Path:
        return self.checkout("router_image", "releases.yaml")

    @property
    def registry_path(self) -> Path:
        """The flag registry: every flag name ever used, with its meaning (guard 3)."""
        return self.checkout("flags.yaml")

    @property
    def router_source(self) -> Path:
        return self.checkout("router_image", "smars")

    @property
    def image_source(self) -> Path:
        return self.checkout("router_image")

    @property
    def observe_source(self) -> Path:
        """monitor/: the observe image's build context (image/) and the configuration of
        Prometheus and Alertmanager, the monitor's rules among it."""
        return self.checkout("monitor")

    @property
    def observe_image(self) -> str:
        """The observe image (Prometheus, Alertmanager, the webhook receiver): the lab image's
        tag with "-observe", so each lab image has its own and the lab image stays as it is."""
        repo, _, tag = self.image.rpartition(":")
        if not repo or "/" in tag:  # no tag (a colon of a registry's port is no tag)
            return f"{self.image}:latest-observe"
        return f"{repo}:{tag}-observe"

    @property
    def playbooks(self) -> Path:
        return self.checkout("playbooks")

    @property
    def dist(self) -> Path:
        return self.root / "dist" / "releases"

    @property
    def reports(self) -> Path:
        """Where journals, the report, bench figures and Ansible run artifacts go
        (KNIGHT_REPORTS, else reports/ at the root; the tests use a folder of their own)."""
        return Path(os.environ.get("KNIGHT_REPORTS") or self.root / "reports")

    @property
    def lock_path(self) -> Path:
        """The lab's lock file: one mutating operation at a time per lab (toolkit/lab/lock.py).
        Machine-wide (KNIGHT_LOCKS, else knight-locks/ in the temporary folder), not under
        `reports`: two runs with their own reports folders still share the Docker engine."""
        folder = os.environ.get("KNIGHT_LOCKS") or Path(tempfile.gettempdir()) / "knight-locks"
        return Path(folder) / f"{self.lab}.lock"

    @property
    def state(self) -> Path:
        """The lab's own files on the host (its ssh keys, known_hosts, inventory): KNIGHT_STATE,
        else .knight/ at the root; one folder per lab, removed with the lab."""
        return Path(os.environ.get("KNIGHT_STATE") or self.root / ".knight") / self.lab

    @property
    def ssh_control_dir(self) -> Path:
        """Where ssh keeps its ControlPersist sockets: a per-user folder in the temporary folder,
        short enough for a socket's path (about 100 bytes at most)."""
        return Path(tempfile.gettempdir()) / f"knight-ssh-{os.getuid()}"

    @property
    def notes_path(self) -> Path:
        """The lab's run notes (toolkit/lab/notes.py): what one step of a run leaves for the
        next when they may run in different processes (a `chaos run`, `knight lab halt-all`).
        Beside the lock, machine-wide, for the same reason."""
        return self.lock_path.with_name(f"{self.lab}.notes.json")

    @property
    def node_names(self) -> list[str]:
        if self.hosts is not None:
            return list(self.hosts)
        return [f"smars-{i}" for i in range(1, self.nodes + 1)]

    @property
    def network(self) -> str:
        return f"{self.lab}-net"

    def container(self, role_or_node: str) -> str:
        """Docker name of a lab container: `<lab>-smars-3`, `<lab>-venue`, `<lab>-client`."""
        return f"{self.lab}-{role_or_node}"


def _int_env(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range ({low}..{high})")
    return value


def default_forks(nodes: int) -> int:
    """One fork per node up to 16: past that, on a small controller, more forks buy little
    (each task is a process per host on the controller; docs/scaling.md measures it)."""
    return max(1, min(nodes, 16))


def load_settings() -> Settings:
    """Settings from the environment (`KNIGHT_LAB`, `KNIGHT_NODES`, `BASE_IMAGE`, ...)."""
    env = os.environ
    lab = env.get("KNIGHT_LAB", "knight")
    if not _LAB_NAME.fullmatch(lab):
        raise ConfigError(
            f"KNIGHT_LAB={lab!r}: use 1-32 of a-z, 0-9 and '-', starting with a letter"
        )
    nodes = _int_env("KNIGHT_NODES", 8, 1, 32)
    transport = env.get("KNIGHT_TRANSPORT") or None
    if transport is not None and transport not in TRANSPORTS:
        raise ConfigError(f"KNIGHT_TRANSPORT={transport!r}: use one of {', '.join(TRANSPORTS)}")
    return Settings(
        transport=transport,
        root=Path(env.get("KNIGHT_HOME", _ROOT)).resolve(),
        lab=lab,
        nodes=nodes,
        forks=_int_env("KNIGHT_FORKS", default_forks(nodes), 1, 256),
        image=env.get("KNIGHT_IMAGE", "knight-lab:latest"),
        base_image_override=env.get("BASE_IMAGE") or None,
        venue_cap=_int_env("KNIGHT_VENUE_CAP", 500_000, 1_000, 50_000_000),
    )


def settings_for_lab(name: object) -> Settings:
    """The settings of the lab named `name` (the environment's for everything else): how a
    caller that names its lab in data (the Chaos Toolkit's configuration) gets its settings."""
    if not isinstance(name, str) or not _LAB_NAME.fullmatch(name):
        raise ConfigError(
            f"lab name {name!r}: use 1-32 of a-z, 0-9 and '-', starting with a letter"
        )
    return replace(load_settings(), lab=name)


def node_key(name: str) -> tuple[int, str]:
    """Sort key for node names: smars-2 before smars-10 (anything after a colon is ignored)."""
    head = name.split(":")[0]
    tail = head.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, head)
