"""knight installed from a wheel (`pip install .`, not editable) outside a checkout: the commands
that need only the wheel work, the others say in one line that they need a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, unpacked into a folder of its own (no dependencies:
    they come from the test's own environment)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("knight-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _knight(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KNIGHT_HOME", "KNIGHT_REPORTS")}
    env["PYTHONPATH"] = str(installed)
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_wheel_ships_the_2012_figures(installed: Path):
    assert (installed / "toolkit" / "data" / "knight_2012.json").is_file()
    assert not (installed / "playbooks").exists()


def test_the_report_works_from_an_installed_knight_anywhere(installed: Path, tmp_path):
    result = _knight(installed, tmp_path, "report", "--json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "reports" / "index.md").is_file()
    assert "Knight Capital" in (tmp_path / "reports" / "index.md").read_text()
    assert "Knight Capital" in (tmp_path / "reports" / "index.html").read_text()  # its templates


def test_a_command_that_needs_a_checkout_says_so_in_one_line(installed: Path, tmp_path):
    result = _knight(installed, tmp_path, "flags", "lint")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "needs a knight checkout" in lines[0] and "KNIGHT_HOME" in lines[0]
