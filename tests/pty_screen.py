"""A command in a pseudo-terminal, its screen read through a terminal emulator (pyte): what a
person at a terminal would see, for the tests of the live views. Imported by name (tests/ is on
the path of every test, through its conftest)."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pyte
from interrupt import at_a_terminal

__all__ = ["Terminal"]

ROOT = Path(__file__).resolve().parents[1]


class Terminal:
    """`argv` run in a pseudo-terminal of `cols` x `rows` (stdin, stdout and stderr all on it,
    no echo), in a session of its own; everything it writes is fed to a pyte screen."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cols: int = 160,
        rows: int = 50,
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # what the test types is not drawn on the screen
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        base = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**base, "TERM": "xterm-256color"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=at_a_terminal,
        )
        os.close(slave)
        self._master = master
        self._screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self._lock = threading.Lock()
        self._ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every end of the terminal's other side is closed
                break
            if not chunk:
                break
            with self._lock:
                self._stream.feed(chunk)
        self._ended.set()

    def screen(self) -> str:
        """The screen as it is now, a line per row (trailing blanks cut)."""
        with self._lock:
            return "\n".join(line.rstrip() for line in self._screen.display)

    def wait_for(self, ready: Callable[[str], bool], what: str, timeout: float = 120) -> str:
        """The first screen for which `ready` holds (a `ready` that raises, on a frame caught
        half drawn, does not); fails, showing the screen, after `timeout` seconds or once the
        command ended without it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            try:
                if ready(shown):
                    return shown
            except (AssertionError, ValueError, IndexError):
                pass
            if self._ended.is_set():
                break
            time.sleep(0.05)
        raise AssertionError(f"the screen never showed {what}:\n{self.screen()}")

    def wait_for_text(self, pattern: str, timeout: float = 120) -> str:
        return self.wait_for(lambda s: re.search(pattern, s) is not None, repr(pattern), timeout)

    def type(self, text: str) -> None:
        os.write(self._master, text.encode())

    def finish(self, timeout: float = 120) -> int:
        """Wait for the command to end and its last output to be on the screen."""
        code = self.proc.wait(timeout=timeout)
        self._ended.wait(timeout=10)
        os.close(self._master)
        return code

    def kill(self, grace_s: float = 300) -> None:
        """End the command if it still runs: Ctrl-C first (a run then cleans up after itself,
        within `grace_s`), then SIGKILL."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
