"""`knight verify`: the testinfra suite (tests/infra) against a fleet's inventory: the lab's own,
or a staging fleet's (`--inventory`)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from toolkit.errors import KnightError
from toolkit.lab.lab import Lab

from .fleet import Fleet, as_fleet
from .operations import check_version

__all__ = ["VerifyResult", "testinfra_env", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    returncode: int
    command: list[str]


def testinfra_env(fleet: Fleet) -> dict[str, str]:
    """The environment testinfra's ansible backend reaches the fleet with. Over ssh it runs one
    `ssh` per command and, with no ControlPath, opens a connection for each (the suite runs
    some fifteen commands a node): its extra arguments name the fleet's own ControlPersist
    folder, the one Ansible uses, so it keeps one connection per node as a deploy does, never
    one opened under other pinned host keys. The inventory's own ssh options come first, so
    host keys stay checked against its known_hosts."""
    env = fleet.ansible_env()
    folder = env["ANSIBLE_SSH_CONTROL_PATH_DIR"]
    return env | {
        "ANSIBLE_SSH_EXTRA_ARGS": (
            f"-o ControlMaster=auto -o ControlPersist=60s -o ControlPath={folder}/t-%C"
        )
    }


def verify(
    lab: Lab | Fleet, release: str | None = None, extra: list[str] | None = None
) -> VerifyResult:
    """Run tests/infra over every node of the fleet; its output goes straight to the terminal.
    `returncode` is pytest's own, which `knight verify` exits with."""
    if release is not None:
        check_version(release)
    fleet = as_fleet(lab)
    suite = fleet.settings.checkout("tests", "infra")
    if not suite.is_dir():
        raise KnightError(f"no verification suite at {suite}")
    if release is not None:
        fleet.catalog.get(release)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        "--hosts=ansible://routers",
        f"--ansible-inventory={fleet.inventory_path}",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-rfE",
        f"--rootdir={suite}",
    ]
    if release:
        command.append(f"--expect-release={release}")
    command += extra or []
    env = {**os.environ, **testinfra_env(fleet)}
    done = subprocess.run(command, cwd=fleet.settings.root, check=False, env=env)
    return VerifyResult(done.returncode == 0, done.returncode, command)
