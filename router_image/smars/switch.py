"""The mechanics of a release switch: check the new tree can run, then hand the listening
sockets to a process of it while they stay open, so clients that connect meanwhile wait in the
backlog instead of being refused.

Two ways: the warm one, when routerd keeps this process (SMARS_SUPERVISED) and the deploy armed
the node for the release ahead of the flip: a standby process of the new release has done its
imports and waits; at the switch it gets `go` and this process exits. Otherwise this process
re-executes itself from the new tree (same pid), which costs an interpreter start and the
imports inside the flip.

Either way the new tree is checked by this process, the one already trusted, before any of its
code runs: importing a module runs it, so a tree is hashed (and refused when it holds anything
its hash does not cover) first, and the new process imports from that very folder, resolved.
No process started here writes or reads bytecode in a tree: Python's cache is the router user's
own folder (PYTHONPYCACHEPREFIX), and a release tree holds none.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ReleaseError
from .release import VERSION, Release, check_tree, load_release, tree_dir, tree_hash

__all__ = [
    "INHERIT_ENV",
    "SIGNALS",
    "STANDBY_ENV",
    "SUPERVISED_ENV",
    "Standby",
    "await_go",
    "inherited_fds",
    "reexec",
    "supervised",
    "unrunnable",
]

INHERIT_ENV = "SMARS_INHERIT_FDS"  # "order:5,admin:6"
#: Set by routerd for the routers it keeps: one may exit after handing over to a standby.
SUPERVISED_ENV = "SMARS_SUPERVISED"
#: In a standby process: the fd of its socket pair with the router that started it.
STANDBY_ENV = "SMARS_STANDBY_FD"

# The signals the node handles; blocked across the exec so that none lands on the new process
# before it has handlers (pending ones are delivered once it unblocks them).
SIGNALS = frozenset({signal.SIGHUP, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT})


def inherited_fds() -> dict[str, int]:
    """The listening sockets the previous process left us, by name; the variable is removed so
    that no child of ours believes it inherited them."""
    spec = os.environ.pop(INHERIT_ENV, "")
    fds = {}
    for item in filter(None, spec.split(",")):
        name, _, fd = item.partition(":")
        if fd.isdigit():
            fds[name] = int(fd)
    return fds


def supervised() -> bool:
    """Whether routerd keeps this process, so that it may hand over to a standby and exit."""
    return os.environ.get(SUPERVISED_ENV) == "1"


def _command(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-S", "-P", "-m", "smars", *argv]


#: Where a router's Python keeps its bytecode cache, instead of the __pycache__/ folders of the
#: trees it imports: the router user's own folder (the image fills it with the standard
#: library's), so bytecode slipped into a release tree after it was checked is never read.
PYCACHE = "/var/cache/smars/pycache"


def _environ(tree: str) -> dict[str, str]:
    """The environment of a router process of `tree`: it imports from that folder alone, and
    Python neither writes nor reads a __pycache__/ there (a release tree that holds any is
    refused): its bytecode cache is `PYCACHE` (SMARS_PYCACHE elsewhere)."""
    cache = os.environ.get("SMARS_PYCACHE", PYCACHE)
    env = dict(os.environ, PYTHONPATH=tree, PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the cache is written, but never into the tree
    return env


def _inherit_spec(fds: Mapping[str, int]) -> str:
    return ",".join(f"{name}:{fd}" for name, fd in fds.items())


def _read_line(sock: socket.socket, timeout: float) -> bytes:
    """One line from `sock` within `timeout` seconds; b"" on end of file or timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                return b""
            data += chunk
    except (TimeoutError, OSError):
        return b""
    return data.strip()


class Standby:
    """A router process of the next release, started before the switch: it has imported its
    code and hashed its tree, and waits for `go` on a socket pair; it then runs as the router
    on the listening sockets it inherited when it was started."""

    def __init__(self, path: str, tree: str, proc: subprocess.Popen[bytes], ctl: socket.socket):
        self.path = path
        self.tree = tree
        self.proc = proc
        self._ctl = ctl
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._outcome: str | None = None  # "" when ready, else why not (once known)
        self.prepared_s: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    def spawn(cls, path: str, tree: str, argv: Sequence[str], fds: Mapping[str, int]) -> Standby:
        """Start it from the release tree at `path`, once this process has checked that the
        folder holds `tree` and nothing its hash does not cover: no code of a tree runs before
        that. It then reports ready for `tree` by itself (`wait_ready`), having imported from
        that folder and hashed it again. ReleaseError when `path` is not such a tree."""
        path = os.path.realpath(path)  # what is hashed is what it imports, not a link's target
        problem = check_tree(path)
        if problem:
            raise ReleaseError(problem)
        found = tree_hash(path)
        if found != tree:
            raise ReleaseError(f"{path} holds tree {found[:12]}, not {tree[:12]}")
        ours, theirs = socket.socketpair()
        env = _environ(path)
        env[STANDBY_ENV] = str(theirs.fileno())
        env[INHERIT_ENV] = _inherit_spec(fds)
        try:
            proc = subprocess.Popen(
                _command(argv), env=env, pass_fds=(*fds.values(), theirs.fileno())
            )
        except OSError as e:
            ours.close()
            raise ReleaseError(f"cannot start a standby: {e}") from None
        finally:
            theirs.close()
        return cls(path, tree, proc, ours)

    def wait_ready(self, timeout: float) -> None:
        """Return once it is ready for its tree; ReleaseError (and it is discarded) when it is
        not, or not within `timeout` seconds. Any thread may ask; the answer is read once."""
        with self._lock:
            if self._outcome is None:
                line = _read_line(self._ctl, timeout)
                try:
                    ready = json.loads(line) if line else {"error": f"not ready in {timeout}s"}
                except ValueError:
                    ready = {"error": f"unexpected answer {line[:80]!r}"}
                if not isinstance(ready, dict):
                    ready = {"error": f"unexpected answer {line[:80]!r}"}
                if ready.get("tree") == self.tree:
                    self._outcome = ""
                    self.prepared_s = round(time.monotonic() - self._started, 3)
                else:
                    found = str(ready.get("tree"))[:12]
                    self._outcome = ready.get("error") or (
                        f"{self.path} holds tree {found}, not {self.tree[:12]}"
                    )
                    self.discard()
        if self._outcome:
            raise ReleaseError(self._outcome)

    @property
    def ready(self) -> bool:
        return self._outcome == "" and self.proc.poll() is None

    def go(self, timeout: float = 2.0) -> bool:
        """Tell it to take over; True once it has (this process must then exit)."""
        try:
            self._ctl.sendall(b"go\n")
        except OSError:
            return False
        if _read_line(self._ctl, timeout) == b"taken":
            self._ctl.close()
            return True
        self.discard()
        return False

    def discard(self) -> None:
        """End it (it exits when its socket pair closes; terminated too, in case it is still
        importing) and reap it without waiting here."""
        self._ctl.close()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                # Reaped here when it ends at once (the usual case): a re-exec right after
                # would end a reaping thread and leave a zombie behind.
                self.proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                threading.Thread(
                    target=self.proc.wait, name="smars-standby-reap", daemon=True
                ).start()


def await_go() -> Release | None:
    """In a standby (STANDBY_ENV set): report ready for our tree, then block until the router
    that started us says `go` (return the release, hashed as this process started) or goes
    away without it (exit quietly). None at once in a router started any other way."""
    fd = os.environ.pop(STANDBY_ENV, None)
    if fd is None:
        return None
    ctl = socket.socket(fileno=int(fd))
    release = None
    try:
        # Hashed before the strategy modules are imported (the router that started us hashed
        # the whole tree before this process ran any of it).
        release = load_release(tree_dir())
        from .strategies import discover  # the strategy modules too, before `go`

        discover()
        ready: dict[str, object] = {"tree": release.tree}
    except Exception as e:  # anything that stops this tree from running is reported
        ready = {"error": f"{type(e).__name__}: {e}"}
    try:
        ctl.sendall(json.dumps(ready).encode() + b"\n")
        if "error" in ready or _read_line(ctl, 24 * 3600.0) != b"go":
            os._exit(0)  # discarded: leave without a trace (no cleanup of shared state)
        ctl.sendall(b"taken\n")
    except OSError:
        os._exit(0)
    finally:
        ctl.close()
    return release


def unrunnable(tree: str, running: str | None = None) -> str | None:
    """Why a new process could not start from `tree`, checked before giving up this one: it
    must be a release folder (`MAJOR.MINOR.PATCH`) beside the running one (`running`, default
    the tree this code came from), and a clean tree whose release.json reads. Whatever led
    here (a link, a pending marker), nothing else is run."""
    problem = check_tree(tree)
    if problem:
        return problem
    target = Path(os.path.realpath(tree))
    if not VERSION.fullmatch(target.name):
        return f"{tree}: {target.name!r} is not a release version (MAJOR.MINOR.PATCH)"
    releases = Path(os.path.realpath(running)).parent if running else tree_dir().parent
    if target.parent != releases:
        return f"{tree}: not beside the running release (in {releases})"
    try:
        load_release(target)
    except ReleaseError as e:
        return str(e)
    return None


def reexec(tree: str, argv: Sequence[str], fds: Mapping[str, int]) -> None:
    """`python3 -S -P -m smars ARGV` from `tree`, keeping `fds`; returns only by raising. No
    site module (-S): the router needs nothing from site-packages, and starts sooner."""
    env = _environ(tree)
    env[INHERIT_ENV] = _inherit_spec(fds)
    for fd in fds.values():
        os.set_inheritable(fd, True)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        sys.stdout.flush()
        command = _command(argv)
        os.execve(command[0], command, env)
    finally:  # only reached when execve failed
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in fds.values():
            os.set_inheritable(fd, False)
