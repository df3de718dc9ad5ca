"""What the lab's containers are: the specs of the venue, the client, the artifact repository and
the routers, the labels they carry, and the files a router starts with (its release and settings)."""

from __future__ import annotations

import json
import tarfile
import time
from typing import Any

from toolkit.guards.sets import GuardSet
from toolkit.releases.artifacts import Artifact
from toolkit.settings import Settings

from .engine import ContainerSpec, FileEntry
from .paths import SMARS_ETC, SMARS_HOME

__all__ = [
    "artifacts_spec",
    "client_spec",
    "fleet_manifest",
    "json_bytes",
    "lab_specs",
    "labels",
    "release_entries",
    "router_spec",
    "venue_spec",
]


def json_bytes(doc: Any) -> bytes:
    """A settings file's bytes: indented, sorted JSON with a final newline."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def labels(role: str, node: str | None = None) -> dict[str, str]:
    """The labels of a lab container besides the lab's own: its role and, for a router, its node."""
    found = {"knight.role": role}
    if node:
        found["knight.node"] = node
    return found


def release_entries(artifact: Artifact) -> list[FileEntry]:
    """The artifact's files, placed under `releases/<version>/`."""
    entries = []
    with tarfile.open(artifact.tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                entries.append(FileEntry(f"releases/{artifact.version}/{member.name}", data, 0o644))
    return entries


def fleet_manifest(artifact: Artifact, epoch: int | None = None) -> dict[str, Any]:
    """The fleet manifest for a fleet that runs `artifact` (guard 2, fencing); epoch: now, in ms."""
    return {
        "release": artifact.version,
        "tree": artifact.tree,
        "epoch": epoch if epoch is not None else time.time_ns() // 1_000_000,
    }


def router_spec(
    settings: Settings,
    node: str,
    artifact: Artifact,
    *,
    token: str,
    flags: dict[str, dict[str, Any]],
    guards: GuardSet,
) -> ContainerSpec:
    """A router node running `artifact`, with these flags and guards and a fleet manifest of it."""
    s = settings
    config = {"node": node, "venue": f"venue:{s.venue_port}"}
    return ContainerSpec(
        name=s.container(node),
        hostname=node,
        command=["router"],
        labels=labels("router", node),
        env={"SMARS_ADMIN_TOKEN": token, "SMARS_NODE": node},
        ports=(s.order_port, s.admin_port),
        aliases=(node,),
        files=[
            (
                SMARS_HOME,
                [
                    *release_entries(artifact),
                    FileEntry("current", target=f"releases/{artifact.version}"),
                ],
            ),
            (
                SMARS_ETC,
                [
                    FileEntry("router.json", json_bytes(config)),
                    FileEntry("flags.json", json_bytes({"flags": flags})),
                    FileEntry("guards.json", json_bytes(guards.router_file())),
                    FileEntry("fleet.json", json_bytes(fleet_manifest(artifact))),
                ],
            ),
        ],
    )


def venue_spec(settings: Settings, token: str) -> ContainerSpec:
    """The venue: the market the routers send child orders to, with its admin API."""
    s = settings
    return ContainerSpec(
        name=s.container("venue"),
        hostname="venue",
        command=["venue", "--cap", str(s.venue_cap)],
        labels=labels("venue"),
        env={"VENUE_ADMIN_TOKEN": token},
        ports=(s.venue_port, s.venue_admin_port),
        aliases=("venue",),
    )


def artifacts_spec(settings: Settings) -> ContainerSpec:
    """The artifact repository nodes download releases from during a deploy."""
    return ContainerSpec(
        name=settings.container("artifacts"),
        hostname="artifacts",
        command=["artifacts"],
        labels=labels("artifacts"),
        aliases=("artifacts",),
    )


def client_spec(settings: Settings) -> ContainerSpec:
    """The client: where the load generator runs, on the lab network."""
    return ContainerSpec(
        name=settings.container("client"),
        hostname="client",
        command=["client"],
        labels=labels("client"),
        aliases=("client",),
    )


def lab_specs(
    settings: Settings,
    artifact: Artifact,
    *,
    token: str,
    flags: dict[str, dict[str, Any]],
    guards: GuardSet,
) -> list[ContainerSpec]:
    """Every container of the lab, the venue first (routers connect to it as they start), then
    the client, the artifact repository and the routers smars-1..N running `artifact`."""
    specs = [venue_spec(settings, token), client_spec(settings), artifacts_spec(settings)]
    specs += [
        router_spec(settings, node, artifact, token=token, flags=flags, guards=guards)
        for node in settings.node_names
    ]
    return specs
