"""What the lab's containers are: the specs of the venue, the client, the artifact repository and
the routers, the labels, tokens and limits they carry, and the files a router starts with (its
release and settings)."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from dataclasses import asdict, replace
from typing import Any

from toolkit.guards.sets import GuardSet
from toolkit.releases.artifacts import Artifact
from toolkit.settings import Settings

from .engine import EXEC_USER_LABEL, ContainerSpec, FileEntry, Resources
from .paths import SMARS_ETC, SMARS_HOME, SMARS_RELEASES
from .ssh import SSH_DIR
from .tokens import LabTokens

__all__ = [
    "ARTIFACTS_RESOURCES",
    "CLIENT_RESOURCES",
    "ROUTER_RESOURCES",
    "SECRET_LABEL",
    "SPEC_LABEL",
    "SSH_CAPABILITIES",
    "TRANSPORT_LABEL",
    "VENUE_RESOURCES",
    "artifacts_spec",
    "client_spec",
    "fleet_manifest",
    "json_bytes",
    "lab_specs",
    "labels",
    "release_entries",
    "router_spec",
    "spec_digest",
    "venue_spec",
]

_MIB = 2**20
# Sized for 8 to 32 nodes on a 24 GiB machine: at 32 nodes the lab may use at most about 15 GiB.
# An idle router uses about 30 MiB, two during a warm switch (router and standby); 20000
# working parents (`max_working`) or a Power Peg runaway stay well inside 384 MiB. Threads count
# as processes: a router serves up to 64 admin requests at once, and the guarded flip's agent
# asks up to 32 peers at once.
ROUTER_RESOURCES = Resources(memory=384 * _MIB, pids=256)
# The venue keeps every execution of a run in memory (the cap bounds the run: 500k messages by
# default) and a thread per admin request.
VENUE_RESOURCES = Resources(memory=2048 * _MIB, pids=256)
# The load generator keeps every parent order it sent, for its accounting.
CLIENT_RESOURCES = Resources(memory=1024 * _MIB, pids=256)
ARTIFACTS_RESOURCES = Resources(memory=128 * _MIB, pids=64)

#: What a container was created from (see `spec_digest`): `lab up` recreates one that differs.
#: The router's commit-confirmed window (its `switch_confirm_s`) up to that many nodes.
CONFIRM_S = 10

SPEC_LABEL = "knight.spec"
#: On the venue container: the lab secret every token derives from (toolkit/lab/tokens.py).
#: A label, not an environment variable: no process inside any container can read it.
SECRET_LABEL = "knight.secret"
#: On a router: how the host reaches it (settings.TRANSPORTS).
TRANSPORT_LABEL = "knight.transport"
#: What a node of the ssh transport keeps of root's powers, and only to start: the entry point
#: becomes the deploy user to start sshd and the router's user to start the router, and neither
#: keeps a capability (a non-root exec drops them; no-new-privileges stops any coming back).
#: sshd runs as the deploy user, the one user it lets in, so it needs no privilege separation:
#: no CHOWN, SYS_CHROOT nor AUDIT_WRITE; it listens on an unprivileged port: no NET_BIND_SERVICE.
SSH_CAPABILITIES = ("SETUID", "SETGID")


def spec_digest(spec: ContainerSpec, image_id: str) -> str:
    """A digest of what a container is created from (the image, its command, user, environment,
    tokens included, labels, ports, limits and volumes), not of the files it starts with: a
    container whose digest differs is not the one the lab would create now."""
    made = {
        "image": image_id,
        "command": spec.command,
        "hostname": spec.hostname,
        "user": spec.user,
        "env": spec.env,
        "labels": {k: v for k, v in spec.labels.items() if k != SPEC_LABEL},
        "ports": list(spec.ports),
        "aliases": list(spec.aliases),
        "resources": asdict(spec.resources),
        "volumes": list(spec.volumes),
        **({"cap_add": list(spec.cap_add)} if spec.cap_add else {}),
        **({"binds": [list(b) for b in spec.binds]} if spec.binds else {}),
    }
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()[:32]


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


def _user(settings: Settings) -> str:
    return f"{settings.uid}:{settings.uid}"


def router_spec(
    settings: Settings,
    node: str,
    artifact: Artifact,
    *,
    tokens: LabTokens,
    flags: dict[str, dict[str, Any]],
    guards: GuardSet,
    ssh: list[FileEntry] | None = None,
) -> ContainerSpec:
    """A router node running `artifact`, with these flags and guards and a fleet manifest of it;
    its own admin token (in its environment, and in /etc/smars/admin.token for the deploy user
    alone), and the lab's hello token for the venue. Its release trees are a volume of its own
    (a mount point the router cannot swap for another folder). With `ssh` (its host key and the
    deploy user's authorized key, ssh.node_ssh_files), sshd runs beside the router."""
    s = settings
    config: dict[str, Any] = {"node": node, "venue": f"venue:{s.venue_port}"}
    if s.nodes > CONFIRM_S:
        # The lab's nodes share the machine's cores: a larger fleet takes longer to switch as
        # a whole, and a node must not undo its switch while the deploy still waits for the
        # others (the playbook allows a second per node too).
        config["switch_confirm_s"] = float(s.nodes)
    spec = ContainerSpec(
        name=s.container(node),
        hostname=node,
        command=["router"],
        labels=labels("router", node),
        user=_user(s),
        resources=ROUTER_RESOURCES,
        env={
            "SMARS_ADMIN_TOKEN": tokens.node(node),
            "SMARS_VENUE_TOKEN": tokens.hello,
            "SMARS_NODE": node,
        },
        ports=(s.order_port, s.admin_port),
        aliases=(node,),
        volumes=(SMARS_RELEASES,),
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
                    FileEntry("admin.token", tokens.node(node).encode() + b"\n", 0o600),
                ],
            ),
        ],
    )
    return spec if ssh is None else _over_ssh(spec, s, ssh)


def _over_ssh(spec: ContainerSpec, settings: Settings, files: list[FileEntry]) -> ContainerSpec:
    """The node started as root with SSH_CAPABILITIES alone (knight-node's `router-ssh` role),
    its sshd port published, its ssh files in place; `exec` still runs as the router's user."""
    return replace(
        spec,
        command=["router-ssh"],
        user="0:0",
        labels={**spec.labels, TRANSPORT_LABEL: "ssh", EXEC_USER_LABEL: _user(settings)},
        ports=(*spec.ports, settings.ssh_port),
        cap_add=SSH_CAPABILITIES,
        files=[*spec.files, (SSH_DIR, files)],
    )


def venue_spec(settings: Settings, tokens: LabTokens) -> ContainerSpec:
    """The venue: the market the routers send child orders to, with its admin API (its own
    token) and the hello token it expects of the routers; it keeps the lab secret in a label."""
    s = settings
    return ContainerSpec(
        name=s.container("venue"),
        hostname="venue",
        command=["venue", "--cap", str(s.venue_cap)],
        labels={**labels("venue"), SECRET_LABEL: tokens.secret},
        user=_user(s),
        resources=VENUE_RESOURCES,
        env={"VENUE_ADMIN_TOKEN": tokens.venue, "VENUE_HELLO_TOKEN": tokens.hello},
        ports=(s.venue_port, s.venue_admin_port),
        aliases=("venue",),
    )


def _service_spec(settings: Settings, role: str, resources: Resources) -> ContainerSpec:
    """A container of the lab that runs one of the image's roles under its own name."""
    return ContainerSpec(
        name=settings.container(role),
        hostname=role,
        command=[role],
        labels=labels(role),
        user=_user(settings),
        resources=resources,
        aliases=(role,),
    )


def artifacts_spec(settings: Settings, serve_dist: bool = False) -> ContainerSpec:
    """The artifact repository nodes download releases from during a deploy. With `serve_dist`
    (the ssh transport) it serves the host's dist/releases, read-only, as a staging fleet's
    artifact store serves what was uploaded to it: a deploy through an inventory has only to
    build the release, and reaches no node through Docker."""
    spec = _service_spec(settings, "artifacts", ARTIFACTS_RESOURCES)
    if serve_dist:
        spec = replace(spec, binds=((str(settings.dist), "/srv/artifacts"),))
    return spec


def client_spec(settings: Settings) -> ContainerSpec:
    """The client: where the load generator runs, on the lab network."""
    return _service_spec(settings, "client", CLIENT_RESOURCES)


def lab_specs(
    settings: Settings,
    artifact: Artifact,
    *,
    tokens: LabTokens,
    flags: dict[str, dict[str, Any]],
    guards: GuardSet,
    ssh: dict[str, list[FileEntry]] | None = None,
) -> list[ContainerSpec]:
    """Every container of the lab, the venue first (routers connect to it as they start), then
    the client, the artifact repository and the routers smars-1..N running `artifact` (with
    `ssh`, node -> its ssh files: the ssh transport)."""
    specs = [
        venue_spec(settings, tokens),
        client_spec(settings),
        artifacts_spec(settings, serve_dist=ssh is not None),
    ]
    specs += [
        router_spec(
            settings,
            node,
            artifact,
            tokens=tokens,
            flags=flags,
            guards=guards,
            ssh=ssh[node] if ssh is not None else None,
        )
        for node in settings.node_names
    ]
    return specs
