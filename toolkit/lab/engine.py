"""The one module that talks to the Docker engine: networks, containers, files, exec, ports.

Everything it creates carries the lab label, so `remove_lab` finds it all even after a crash,
and it hands out nothing that does not: a container or network that merely bears a lab name is
`Foreign`, and is never removed, exec'd into, written to nor faulted. Every container it creates
runs with no capability (a node of the ssh transport alone gets the two it starts with, see
`ContainerSpec.cap_add`), no way to gain privileges, and a memory and a process limit.
Each Docker call is logged at debug level to "knight.docker" (never a token nor file contents).
"""

from __future__ import annotations

import io
import logging
import shlex
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import Mount

from toolkit.errors import DockerUnavailable, LabError
from toolkit.settings import LABEL

__all__ = [
    "EXEC_USER_LABEL",
    "ContainerSpec",
    "Engine",
    "FileEntry",
    "Foreign",
    "Resources",
    "tar_of",
]

log = logging.getLogger("knight.docker")

#: On a container that starts as another user than its process runs as (a node of the ssh
#: transport starts as root): the user `exec` runs commands as when not told otherwise.
EXEC_USER_LABEL = "knight.exec-user"


@dataclass(frozen=True)
class FileEntry:
    """A file or symlink to place in a container (`target` set → symlink)."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    target: str | None = None
    #: Its owner, when not the one the whole archive is written as (a file of the deploy user
    #: placed among root's, or the reverse).
    uid: int | None = None


class Foreign(LabError):
    """A container or network bears a lab's name without its label: not the lab's to touch."""


@dataclass(frozen=True)
class Resources:
    """What a container may use: memory in bytes (swap none beyond it), and processes (threads
    count), so that a runaway role cannot starve the machine or its neighbours."""

    memory: int
    pids: int


@dataclass
class ContainerSpec:
    """What a lab container is: enough to create it the same way every time."""

    name: str
    hostname: str
    command: list[str]
    labels: dict[str, str]
    #: "uid:gid" its processes run as (the image's user when None)
    user: str | None = None
    resources: Resources = Resources(memory=256 * 2**20, pids=128)
    env: dict[str, str] = field(default_factory=dict)
    #: container port → published on 127.0.0.1 at a free host port
    ports: tuple[int, ...] = ()
    aliases: tuple[str, ...] = ()
    #: folders that are a volume of the container's own (labelled, removed with it)
    volumes: tuple[str, ...] = ()
    #: files placed before the first start: (directory in the container, entries relative to it)
    files: list[tuple[str, list[FileEntry]]] = field(default_factory=list)
    #: capabilities kept beyond none (every other one is dropped)
    cap_add: tuple[str, ...] = ()
    #: host folders it sees read-only: (host path, path in the container)
    binds: tuple[tuple[str, str], ...] = ()


def tar_of(entries: Iterable[FileEntry], uid: int, dirs: Iterable[str] = ()) -> bytes:
    """An in-memory tar of files and symlinks, owned by `uid`, with every folder they sit in
    (left out, Docker would create those folders owned by root)."""
    entries = list(entries)
    parents = {
        "/".join(parts[:i])
        for e in entries
        for parts in [e.path.strip("/").split("/")]
        for i in range(1, len(parts))
    }
    dirs = [*dirs, *sorted(parents - set(dirs), key=lambda d: (d.count("/"), d))]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, uid
            tar.addfile(info)
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.uid = info.gid = uid if e.uid is None else e.uid
            if e.target is not None:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.target, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(e.data), e.mode
                tar.addfile(info, io.BytesIO(e.data))
    return raw.getvalue()


class Engine:
    """A Docker engine seen through one lab's label."""

    def __init__(self, lab: str, client: docker.DockerClient | None = None) -> None:
        self.lab = lab
        if client is not None:  # given (the unit tests give a fake one)
            self.client = client
            return
        log.debug("connect to the Docker engine (lab %s)", lab)
        try:
            self.client = docker.from_env(timeout=60)
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine: {exc}") from None

    def _check_label(self, kind: str, name: str, labels: dict[str, str] | None) -> None:
        if (labels or {}).get(LABEL) != self.lab:
            raise Foreign(
                f"{kind} {name} is not lab {self.lab!r}'s (it lacks the label {LABEL}={self.lab}): "
                "knight leaves it alone; remove or rename it"
            )

    # -- queries ---------------------------------------------------------------------------
    def containers(self, **labels: str) -> list[Container]:
        filters = [f"{LABEL}={self.lab}"] + [f"knight.{k}={v}" for k, v in labels.items()]
        log.debug("list containers %s", ",".join(filters))
        return self.client.containers.list(all=True, filters={"label": filters})

    def get(self, name: str) -> Container | None:
        """The lab's container of that name, None when there is none; Foreign when a container
        of that name does not carry the lab's label (every lookup by name comes here)."""
        log.debug("get container %s", name)
        try:
            container = self.client.containers.get(name)
        except docker.errors.NotFound:
            return None
        if container.name != name:  # Docker also matches an id prefix: not what was asked
            return None
        self._check_label("container", name, container.labels)
        return container

    def network(self, name: str) -> Network | None:
        """The lab's network of that name, None when there is none; Foreign when it is not the
        lab's."""
        log.debug("list networks %s", name)
        # `names` matches substrings too: keep the exact one
        found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
        if not found:
            return None
        self._check_label("network", name, found[0].attrs.get("Labels"))
        return found[0]

    def image_exists(self, ref: str) -> bool:
        log.debug("look up image %s", ref)
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    def image_id(self, ref: str) -> str:
        """The id of a local image (docker.errors.ImageNotFound when there is none)."""
        log.debug("look up image %s", ref)
        return self.client.images.get(ref).id

    @staticmethod
    def host_port(container: Container, port: int) -> int:
        """Host port on 127.0.0.1 that a container port is published at."""
        bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(
            f"{port}/tcp"
        )
        if not bindings:
            raise LabError(f"{container.name}: port {port} is not published (is it running?)")
        return int(bindings[0]["HostPort"])

    def cpu_seconds(self, container: Container) -> float:
        """CPU time the container's processes have used so far (its cgroup's counter)."""
        log.debug("stats %s", container.name)
        stats = self.client.api.stats(container.id, stream=False, one_shot=True)
        return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9

    #: Sums the resident memory of every process of a container (its /proc, read inside it).
    _RSS = (
        "import os\n"
        "total = 0\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    if pid == str(os.getpid()):\n"
        "        continue\n"
        "    try:\n"
        "        lines = open(f'/proc/{pid}/status').read().splitlines()\n"
        "    except OSError:\n"
        "        continue\n"
        "    total += sum(int(x.split()[1]) for x in lines if x.startswith('VmRSS:'))\n"
        "print(total * 1024)\n"
    )

    def rss_bytes(self, container: Container) -> int:
        """Resident memory of the container's processes, summed (the one measuring excluded)."""
        code, out = self.exec(container, ["python3", "-c", self._RSS])
        if code != 0 or not out.strip().isdigit():
            raise LabError(f"{container.name}: could not read its processes' memory: {out[-200:]}")
        return int(out.strip())

    @staticmethod
    def env_of(container: Container) -> dict[str, str]:
        pairs = (p.split("=", 1) for p in container.attrs["Config"].get("Env") or [])
        return {k: v for k, v in pairs}

    # -- lifecycle -------------------------------------------------------------------------
    def ensure_network(self, name: str) -> None:
        if self.network(name) is not None:
            return
        log.debug("create network %s", name)
        self.client.networks.create(
            name, driver="bridge", labels={LABEL: self.lab}, check_duplicate=True
        )

    def create(self, spec: ContainerSpec, image: str, network: str, uid: int) -> Container:
        """Create (not start) a container, with its files in place."""
        log.debug(
            "create container %s (image %s, network %s, command %s, ports %s)",
            spec.name,
            image,
            network,
            shlex.join(spec.command),
            ",".join(map(str, spec.ports)) or "none",
        )
        endpoint = self.client.api.create_endpoint_config(aliases=list(spec.aliases))
        networking = self.client.api.create_networking_config({network: endpoint})
        created = self.client.api.create_container(
            image,
            command=spec.command,
            name=spec.name,
            hostname=spec.hostname,
            user=spec.user,
            labels={**spec.labels, LABEL: self.lab},
            environment=spec.env,
            ports=list(spec.ports),
            host_config=self._host_config(spec),
            networking_config=networking,
        )
        container = self.client.containers.get(created["Id"])
        for directory, entries in spec.files:
            self.put(container, directory, entries, uid)
        return container

    def _host_config(self, spec: ContainerSpec) -> dict:
        # Nothing in a lab container needs a capability: its processes run as a non-root user,
        # and the Docker engine, not the container, places files and ports. A node of the ssh
        # transport starts as root with the two it needs to become its users (specs.py).
        return self.client.api.create_host_config(
            init=True,
            port_bindings={p: ("127.0.0.1", None) for p in spec.ports},
            restart_policy={"Name": "no"},
            log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "2"}},
            cap_drop=["ALL"],
            cap_add=list(spec.cap_add) or None,
            binds={host: {"bind": inside, "mode": "ro"} for host, inside in spec.binds} or None,
            security_opt=["no-new-privileges:true"],
            pids_limit=spec.resources.pids,
            mem_limit=spec.resources.memory,
            memswap_limit=spec.resources.memory,
            # Anonymous, so they go with the container; labelled, so `remove_lab` finds them.
            mounts=[
                Mount(path, None, type="volume", labels={LABEL: self.lab}) for path in spec.volumes
            ],
        )

    def start(self, container: Container) -> None:
        log.debug("start container %s", container.name)
        container.start()

    def remove(self, container: Container) -> None:
        """Remove a container, running or not, with its own volumes."""
        log.debug("remove container %s", container.name)
        container.remove(force=True, v=True)

    def unpause(self, container: Container) -> None:
        log.debug("unpause container %s", container.name)
        container.unpause()

    def stop(self, container: Container, timeout: int = 1) -> None:
        log.debug("stop container %s (grace %ss)", container.name, timeout)
        container.stop(timeout=timeout)

    def kill(self, container: Container) -> None:
        log.debug("kill container %s", container.name)
        container.kill()

    def pause(self, container: Container) -> None:
        log.debug("pause container %s", container.name)
        container.pause()

    def state(self, container: Container) -> str:
        """The container's state as the engine sees it now (running, paused, exited...)."""
        container.reload()
        return container.status

    def networks_of(self, container: Container) -> set[str]:
        container.reload()
        return set(container.attrs["NetworkSettings"]["Networks"])

    def _lab_network(self, name: str) -> Network:
        network = self.network(name)
        if network is None:
            raise LabError(f"no network {name} in lab {self.lab!r} (knight lab up)")
        return network

    def disconnect(self, network: str, container: Container) -> None:
        log.debug("disconnect %s from network %s", container.name, network)
        self._lab_network(network).disconnect(container)

    def connect(self, network: str, container: Container, aliases: list[str]) -> None:
        log.debug("connect %s to network %s as %s", container.name, network, ",".join(aliases))
        self._lab_network(network).connect(container, aliases=aliases)

    @staticmethod
    def _exec_user(container: Container, user: str | None) -> str:
        """Who a command runs as: `user`, else the user the container's process runs as."""
        return user or (container.labels or {}).get(EXEC_USER_LABEL, "")

    def exec_detached(self, container: Container, cmd: list[str], user: str | None = None) -> None:
        """Start a command in a container and return at once (as `user`, else the container's)."""
        log.debug(
            "exec (detached) in %s%s: %s",
            container.name,
            f" as {user}" if user else "",
            shlex.join(cmd),
        )
        container.exec_run(cmd, detach=True, user=self._exec_user(container, user))

    def put(
        self, container: Container, directory: str, entries: Iterable[FileEntry], uid: int
    ) -> None:
        entries = list(entries)
        log.debug("put %d file(s) into %s:%s", len(entries), container.name, directory)
        if not container.put_archive(directory, tar_of(entries, uid)):
            raise LabError(f"{container.name}: could not write into {directory}")

    def put_tar(self, container: Container, directory: str, data: bytes) -> None:
        log.debug("put a tar of %d bytes into %s:%s", len(data), container.name, directory)
        if not container.put_archive(directory, data):
            raise LabError(f"{container.name}: could not write into {directory}")

    def exec(
        self, container: Container, cmd: list[str], user: str | None = None
    ) -> tuple[int, str]:
        """Run a command in a container as `user` (else the container's own, the router's in a
        node); returns (exit code, combined output)."""
        log.debug(
            "exec in %s%s: %s", container.name, f" as {user}" if user else "", shlex.join(cmd)
        )
        result = container.exec_run(cmd, user=self._exec_user(container, user), demux=False)
        return result.exit_code, (result.output or b"").decode(errors="replace")

    def exec_stream(
        self, container: Container, cmd: list[str], on_stderr: Callable[[str], None] | None = None
    ) -> tuple[int, bytes]:
        """Run a command; hand each stderr line to `on_stderr` as it comes; return (code, stdout)."""
        log.debug("exec (streamed) in %s: %s", container.name, shlex.join(cmd))
        exec_id = self.client.api.exec_create(
            container.id, cmd, user=self._exec_user(container, None)
        )["Id"]
        out, pending = bytearray(), b""
        for stdout, stderr in self.client.api.exec_start(exec_id, stream=True, demux=True):
            if stdout:
                out += stdout
            if stderr:
                pending += stderr
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if on_stderr and line.strip():
                        on_stderr(line.decode(errors="replace"))
        if pending.strip() and on_stderr:
            on_stderr(pending.decode(errors="replace"))
        return self.client.api.exec_inspect(exec_id)["ExitCode"], bytes(out)

    def remove_lab(self) -> dict[str, int]:
        """Remove every container, network and volume carrying this lab's label."""
        counts = {"containers": 0, "networks": 0, "volumes": 0}
        label = {"label": [f"{LABEL}={self.lab}"]}
        log.debug("remove lab %s: list its containers, networks and volumes", self.lab)
        for c in self.client.containers.list(all=True, filters=label):
            log.debug("remove container %s (and its volumes)", c.name)
            try:
                c.remove(force=True, v=True)
                counts["containers"] += 1
            except docker.errors.NotFound:
                pass
        for n in self.client.networks.list(filters=label):
            log.debug("remove network %s", n.name)
            try:
                n.remove()
                counts["networks"] += 1
            except docker.errors.NotFound:
                pass
        for v in self.client.volumes.list(filters=label):
            log.debug("remove volume %s", v.name)
            try:
                v.remove(force=True)
                counts["volumes"] += 1
            except docker.errors.NotFound:
                pass
        return counts
