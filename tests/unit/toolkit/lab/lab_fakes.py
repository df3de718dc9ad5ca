"""A fake Docker client for the lab's unit tests: containers and networks held in memory, every
call that would change one recorded, and the real docker-py APIClient building the create
requests (its host config is what the engine would send), with no engine behind it."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import docker.errors

from toolkit.lab.engine import Engine
from toolkit.releases.artifacts import Artifact
from toolkit.settings import LABEL

IMAGE_ID = "sha256:" + "1" * 64


@dataclass
class FakeContainer:
    name: str
    labels: dict[str, str]
    id: str = ""
    status: str = "running"
    attrs: dict[str, Any] = field(default_factory=dict)
    #: every call that would act on the container: ("remove" | "exec" | "put" | ..., details)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.id = self.id or "f" * 12 + self.name.encode().hex()
        self.attrs = {"Image": IMAGE_ID, "Config": {"Env": []}, **self.attrs}

    def remove(self, **options: Any) -> None:
        self.calls.append(("remove", options))

    def exec_run(self, cmd: list[str], **options: Any) -> SimpleNamespace:
        self.calls.append(("exec", cmd))
        return SimpleNamespace(exit_code=0, output=b"")

    def put_archive(self, directory: str, data: bytes) -> bool:
        self.calls.append(("put", directory))
        return True

    def start(self) -> None:
        self.calls.append(("start", None))

    def kill(self) -> None:
        self.calls.append(("kill", None))

    def stop(self, **options: Any) -> None:
        self.calls.append(("stop", options))

    def pause(self) -> None:
        self.calls.append(("pause", None))


class FakeContainers:
    def __init__(self, items: list[FakeContainer]) -> None:
        self.items = {c.name: c for c in items}

    def get(self, key: str) -> FakeContainer:
        if key in self.items:
            return self.items[key]
        for c in self.items.values():  # Docker matches an id prefix too
            if c.id.startswith(key):
                return c
        raise docker.errors.NotFound(f"No such container: {key}")

    def list(self, all: bool = False, filters: dict | None = None) -> list[FakeContainer]:
        wanted = dict(f.split("=", 1) for f in (filters or {}).get("label", []))
        return [c for c in self.items.values() if all_items_in(wanted, c.labels)]


def all_items_in(wanted: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


class FakeNetworks:
    def __init__(self, items: dict[str, dict[str, str]]) -> None:
        self.items = items  # name -> labels
        self.created: list[str] = []

    def list(self, names: list[str] | None = None, filters: dict | None = None) -> list:
        # like Docker, `names` matches part of a name
        return [
            SimpleNamespace(name=n, attrs={"Labels": labels})
            for n, labels in self.items.items()
            if not names or any(want in n for want in names)
        ]

    def create(self, name: str, **options: Any) -> None:
        self.created.append(name)
        self.items[name] = options.get("labels", {})


class FakeAPI(docker.APIClient):
    """docker-py's own request builders; the calls that would reach the engine are recorded."""

    def __init__(self, containers: FakeContainers) -> None:
        super().__init__(base_url="unix:///nonexistent/docker.sock", version="1.41")
        self._containers = containers
        self.created: list[dict[str, Any]] = []

    def create_container(self, image: str, **options: Any) -> dict[str, str]:
        self.created.append({"image": image, **options})
        made = FakeContainer(options["name"], dict(options.get("labels") or {}), status="created")
        self._containers.items[made.name] = made
        return {"Id": made.id}


class FakeImages:
    def get(self, ref: str) -> SimpleNamespace:
        return SimpleNamespace(id=IMAGE_ID)


class FakeDocker:
    def __init__(self, containers: list[FakeContainer], networks: dict | None = None) -> None:
        self.containers = FakeContainers(containers)
        self.networks = FakeNetworks(dict(networks or {}))
        self.images = FakeImages()
        self.api = FakeAPI(self.containers)


def lab_container(lab: str, name: str, **labels: str) -> FakeContainer:
    """A container of `lab` (it carries the lab's label)."""
    return FakeContainer(f"{lab}-{name}", {LABEL: lab, **labels})


def engine_with(lab: str, *containers: FakeContainer, networks: dict | None = None) -> Engine:
    return Engine(lab, client=FakeDocker(list(containers), networks))  # type: ignore[arg-type]


def tiny_artifact(tmp: Path, version: str = "7.1.0") -> Artifact:
    """An artifact with one file, enough for the specs (a router starts with its files)."""
    tarball = tmp / f"smars-{version}.tar.gz"
    data = b'{"version": "%s"}\n' % version.encode()
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("release.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    manifest = {"artifact_sha256": "0" * 64, "files": {}, "flags": {}, "strategies": []}
    return Artifact(version, "a" * 64, tarball, tmp / "manifest.json", manifest)
