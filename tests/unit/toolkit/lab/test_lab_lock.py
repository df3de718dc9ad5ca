"""One mutating operation at a time on a lab: a second process is refused at once, in one line
naming what holds the lab; the lock goes with its holder, however it ends; nesting in one process
only counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from lab_fakes import engine_with, lab_container

from toolkit.lab.lab import Lab
from toolkit.lab.lock import LabBusy
from toolkit.settings import Settings

# A second process that takes the lab's lock, says so on stdout, and holds it until stdin closes.
HOLDER = textwrap.dedent(
    """
    import sys
    from toolkit.lab.lab import Lab
    from toolkit.settings import Settings

    with Lab(Settings(lab=sys.argv[1])).exclusive(sys.argv[2]):
        print("held", flush=True)
        sys.stdin.read()
    print("released", flush=True)
    """
)


@pytest.fixture(autouse=True)
def _locks(tmp_path, monkeypatch):
    monkeypatch.setenv("KNIGHT_LOCKS", str(tmp_path / "locks"))


@pytest.fixture
def holder():
    """Start a process holding a lab's lock; yields it once it holds it."""
    started: list[subprocess.Popen] = []

    def start(lab: str, what: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, lab, what],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"  # waits for the event, not a time
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_second_process_is_refused_naming_what_holds_the_lab(holder):
    proc = holder("knight-x", "deploy 8.0.0")
    lab = Lab(Settings(lab="knight-x"))
    ran = []
    with pytest.raises(LabBusy) as info, lab.exclusive("experiment skipped_node"):
        ran.append(True)
    assert ran == []  # refused before the block ran: nothing changed
    message = str(info.value)
    assert message.startswith(f"lab 'knight-x' is busy: deploy 8.0.0 (pid {proc.pid} on ")
    assert message.endswith("experiment skipped_node refused, try again once it ends")
    assert "\n" not in message
    assert info.value.exit_code == 1


def test_lab_up_down_and_reset_are_refused_while_another_process_holds_the_lab(holder):
    holder("knight-x", "experiment knightmare")
    node = lab_container("knight-x", "smars-1", **{"knight.node": "smars-1"})
    engine = engine_with("knight-x", node)
    lab = Lab(Settings(lab="knight-x", nodes=1), engine=engine)
    for change in (lab.up, lab.down, lab.reset):
        with pytest.raises(LabBusy, match=r"^lab 'knight-x' is busy: experiment knightmare "):
            change()
    assert node.calls == [] and engine.client.api.created == []


def test_the_lab_is_free_again_once_its_holder_ends(holder):
    proc = holder("knight-x", "deploy 8.0.0")
    proc.communicate("", timeout=10)  # the holder leaves its block and exits
    with Lab(Settings(lab="knight-x")).exclusive("deploy 8.0.1"):
        pass


def test_a_holder_that_crashes_leaves_no_lock_behind(holder):
    proc = holder("knight-x", "experiment knightmare")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with Lab(Settings(lab="knight-x")).exclusive("deploy 8.0.1"):
        pass


def test_another_lab_is_not_held(holder):
    holder("knight-x", "deploy 8.0.0")
    with Lab(Settings(lab="knight-y")).exclusive("deploy 8.0.0"):
        pass


def test_within_one_process_the_lock_nests(holder):
    lab = Lab(Settings(lab="knight-x"))
    with lab.exclusive("experiment reused_flag"):
        with Lab(Settings(lab="knight-x")).exclusive("deploy 8.0.0"):  # the experiment deploys
            pass
        # still held after the inner block: another process is refused
        proc = subprocess.run(
            [sys.executable, "-c", HOLDER, "knight-x", "deploy 8.0.1"],
            input="",
            capture_output=True,
            text=True,
            env=os.environ,
            timeout=30,
        )
        assert proc.returncode == 1
        assert "LabBusy: lab 'knight-x' is busy: experiment reused_flag" in proc.stderr
    with Lab(Settings(lab="knight-x")).exclusive("deploy 8.0.1"):
        pass
