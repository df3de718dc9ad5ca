"""`knight verify`: the testinfra suite (tests/infra) against the lab's inventory, the same suite a
staging fleet runs with its own inventory."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from toolkit.errors import KnightError
from toolkit.lab.lab import Lab

from .ansible import inventory_path
from .operations import check_version

__all__ = ["VerifyResult", "verify"]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    returncode: int
    command: list[str]


def verify(lab: Lab, release: str | None = None, extra: list[str] | None = None) -> VerifyResult:
    """Run tests/infra over every node of the lab; its output goes straight to the terminal.
    `returncode` is pytest's own, which `knight verify` exits with."""
    suite = lab.settings.checkout("tests", "infra")
    if not suite.is_dir():
        raise KnightError(f"no verification suite at {suite}")
    if release is not None:
        check_version(release)
        lab.catalog.get(release)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        "--hosts=ansible://routers",
        f"--ansible-inventory={inventory_path(lab.settings)}",
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
    done = subprocess.run(command, cwd=lab.settings.root, check=False)
    return VerifyResult(done.returncode == 0, done.returncode, command)
