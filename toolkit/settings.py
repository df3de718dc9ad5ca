"""Where things are and what they are called: the one place for paths, names and lab-wide values.

Everything can be overridden from the environment, so a test run, CI and a person's own lab can
live side by side on one Docker engine (`KNIGHT_LAB=knight-test`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["LABEL", "Settings", "load_settings", "node_key"]

#: Label carried by every container, network and volume of a lab; its value is the lab's name.
LABEL = "knight.lab"

_ROOT = Path(__file__).resolve().parent.parent
_LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")


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
    uid: int = 10001
    order_port: int = 7001
    admin_port: int = 8001
    venue_port: int = 9000
    venue_admin_port: int = 9100

    @property
    def catalog_path(self) -> Path:
        return self.root / "router_image" / "releases.yaml"

    @property
    def registry_path(self) -> Path:
        """The flag registry: every flag name ever used, with its meaning (guard 3)."""
        return self.root / "flags.yaml"

    @property
    def router_source(self) -> Path:
        return self.root / "router_image" / "smars"

    @property
    def image_source(self) -> Path:
        return self.root / "router_image"

    @property
    def dist(self) -> Path:
        return self.root / "dist" / "releases"

    @property
    def reports(self) -> Path:
        """Where journals, the report, bench figures and Ansible run artifacts go
        (KNIGHT_REPORTS, else reports/ at the root; the tests use a folder of their own)."""
        return Path(os.environ.get("KNIGHT_REPORTS") or self.root / "reports")

    @property
    def node_names(self) -> list[str]:
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


def load_settings() -> Settings:
    """Settings from the environment (`KNIGHT_LAB`, `KNIGHT_NODES`, `BASE_IMAGE`, ...)."""
    env = os.environ
    lab = env.get("KNIGHT_LAB", "knight")
    if not _LAB_NAME.fullmatch(lab):
        raise ConfigError(
            f"KNIGHT_LAB={lab!r}: use 1-32 of a-z, 0-9 and '-', starting with a letter"
        )
    return Settings(
        root=Path(env.get("KNIGHT_HOME", _ROOT)).resolve(),
        lab=lab,
        nodes=_int_env("KNIGHT_NODES", 8, 1, 32),
        image=env.get("KNIGHT_IMAGE", "knight-lab:latest"),
        base_image_override=env.get("BASE_IMAGE") or None,
        venue_cap=_int_env("KNIGHT_VENUE_CAP", 500_000, 1_000, 50_000_000),
    )


def node_key(name: str) -> tuple[int, str]:
    """Sort key for node names: smars-2 before smars-10 (anything after a colon is ignored)."""
    head = name.split(":")[0]
    tail = head.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else 0, head)
