"""The keeper of a node's router: the container's main process in the `router` role.

`python3 -S -P routerd.py TREE [ROUTER ARGS]` starts `python3 -S -P -m smars ROUTER ARGS` from
the release tree TREE and stays for as long as a router runs. It exists for the warm switch:
a router armed for a release starts a standby process of that release ahead of the flip, and
at the switch hands its listening sockets over and exits. The standby, orphaned then, becomes
this process's child (it is the children's subreaper), so the container lives on, and the
switch costs no interpreter start. Without a standby the router re-executes itself as before.

It passes the signals Docker and the operators send (TERM, INT, HUP, USR2) on to its children,
reaps every router that ends, and exits with the status of the last one. Standard library only,
and it does nothing between those events: the CPU belongs to the routers.

Its control pipe (SMARS_CONTROL, a FIFO only its own group may write: the deploy user, who may
not signal the router itself) takes an operator's word, one per line: `stop` (SIGTERM), `kill`
(SIGKILL), `pause` (SIGSTOP), `cont` (SIGCONT) to the router, and `start`. A router stopped or
killed that way is held down: routerd stays, and on `start` starts the node again through its
entry point (SMARS_ENTRYPOINT), as a container start would. This is how a fault is done to a
node reached over ssh, and undone.

Before the first router runs any code of TREE, routerd checks it: a release folder
(`releases/MAJOR.MINOR.PATCH`, whatever link or pending marker led to it) holding only what its
tree hash covers (no bytecode, no symlink: Python would run them unseen). The router starts
with its bytecode cache in the router user's own folder, so Python writes none into the tree
and reads none from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import stat
import sys
import threading
from datetime import UTC, datetime

__all__ = [
    "CONTROL_SIGNALS",
    "SUPERVISED_ENV",
    "Keeper",
    "children",
    "main",
    "proc_stat",
    "tree_problem",
]

#: Set for the routers this process keeps: they may hand over to a standby and exit.
SUPERVISED_ENV = "SMARS_SUPERVISED"
_PR_SET_CHILD_SUBREAPER = 36
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)
_STOPPING = (signal.SIGTERM, signal.SIGINT)
_USAGE = "usage: python3 -S -P routerd.py RELEASE_TREE [ROUTER ARGS...]"
#: A release folder's name (smars/release.py VERSION: routerd imports nothing from a release).
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
#: The control pipe's words -> the signal each sends the router (`start` sends none).
CONTROL_SIGNALS = {
    "stop": signal.SIGTERM,
    "kill": signal.SIGKILL,
    "pause": signal.SIGSTOP,
    "cont": signal.SIGCONT,
}
#: The words after which the router is held down until `start`.
_HOLDING = ("stop", "kill")


def _log(level: str, event: str, **fields: object) -> None:
    """One JSON line on stdout, of the shape the router and the venue write (smars/log.py: a copy,
    as routerd imports nothing from a release)."""
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "component": "routerd",
        "node": os.environ.get("SMARS_NODE") or socket.gethostname(),
        "level": level,
        "event": event,
        **fields,
    }
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    try:
        sys.stdout.write(line)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # a closed stdout must not take the routers' keeper down


def become_subreaper() -> bool:
    """Adopt the orphans of our descendants (the standby its router leaves behind)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def proc_stat(pid: int | str) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def children(parent: int | None = None) -> list[int]:
    """The pids whose parent is `parent` (default: this process), from /proc."""
    parent = os.getpid() if parent is None else parent
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = proc_stat(name)
            if stat is not None and stat[1] == parent:
                found.append(int(name))
    return found


def _refusal(name: str, mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if name == "__pycache__" or name.endswith(".pyc"):
        return "bytecode"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "neither a file nor a folder"
    return None


def tree_problem(tree: str) -> str | None:
    """The first entry (bytewise) of `tree` that a release tree may not hold, and why; None
    when it holds only files and folders its hash covers. A copy of the rule of smars/release.py
    (docs/protocol.md, "Copies kept on purpose"), refusal only."""
    refused: list[tuple[bytes, str]] = []
    for directory, subdirs, names in os.walk(tree):
        descend = []
        for name in subdirs + names:
            path = os.path.join(directory, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError as e:
                return f"{path}: unreadable: {e.strerror}"
            why = _refusal(name, mode)
            if why:
                refused.append((os.fsencode(path), f"{path}: {why}"))
            elif stat.S_ISDIR(mode):
                descend.append(name)
        subdirs[:] = descend
    if not refused:
        return None
    refused.sort()
    more = f" ({len(refused) - 1} more)" if len(refused) > 1 else ""
    return f"{refused[0][1]}: a release tree holds only the files its hash covers{more}"


def _refuse(tree: str) -> str | None:
    """Why routerd will not start a router from `tree`, or None."""
    if not os.path.isfile(os.path.join(tree, "smars", "__main__.py")):
        return f"{tree}: not a release tree (no smars/__main__.py)"
    folder = os.path.realpath(tree)
    parent, name = os.path.split(folder)
    if not _VERSION.fullmatch(name) or os.path.basename(parent) != "releases":
        return f"{tree}: not a release folder (releases/MAJOR.MINOR.PATCH)"
    return tree_problem(folder)


def router_environ(tree: str) -> dict[str, str]:
    """A router's environment: it imports from `tree` alone, and Python neither writes bytecode
    into it nor reads any from it: its cache is the router user's own folder (the image fills
    it with the standard library's), so bytecode slipped into the tree after it was checked
    never runs. The same as the router's own `switch._environ`
    (tests/unit/router/test_router_bytecode.py holds them together)."""
    env = dict(os.environ, PYTHONPATH=tree)
    env["PYTHONPYCACHEPREFIX"] = os.environ.get("SMARS_PYCACHE", "/var/cache/smars/pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Keeper:
    def __init__(self, tree: str, args: list[str]) -> None:
        self.tree = tree
        self.args = args
        self.stopping: signal.Signals | None = None
        #: Set by `stop`/`kill` on the control pipe: the router stays down until `start`.
        self.held = threading.Event()
        self.restart = threading.Event()

    def listen(self, path: str) -> bool:
        """Open the control pipe at `path` (made anew, writable by this process's group alone)
        and read it in a thread of its own; False when it cannot be made."""
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.mkfifo(path, 0o620)
            os.chmod(path, 0o620)
        except OSError as e:
            _log("warning", "routerd_no_control", path=path, error=e.strerror)
            return False
        threading.Thread(target=self._read, args=(path,), name="control", daemon=True).start()
        return True

    def _read(self, path: str) -> None:
        while True:
            try:
                with open(path, encoding="ascii", errors="replace") as pipe:
                    for line in pipe:
                        self.control(line.strip())
            except OSError as e:
                _log("error", "routerd_control_lost", path=path, error=e.strerror)
                return

    def control(self, word: str) -> None:
        """One word of the control pipe (an unknown one is logged and ignored)."""
        if word == "start":
            if self.held.is_set():
                self.restart.set()
            _log("info", "routerd_control", word=word, held=self.held.is_set())
            return
        sig = CONTROL_SIGNALS.get(word)
        if sig is None:
            _log("warning", "routerd_control_unknown", word=word[:32])
            return
        if word in _HOLDING:
            self.held.set()
        running = children()
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        _log("info", "routerd_control", word=word, signal=sig.name, routers=running)

    def wait_start(self) -> bool:
        """Held down: wait for `start` (True), or for a stop signal meanwhile (False)."""
        _log("info", "routerd_held", detail="router down until `start` on the control pipe")
        while not self.restart.wait(0.2):
            if self.stopping is not None:
                return False
        return True

    def start(self, supervised: bool) -> int:
        # No bytecode written into the release tree (one that holds any is refused).
        env = router_environ(self.tree)
        if supervised:
            env[SUPERVISED_ENV] = "1"
        else:
            env.pop(SUPERVISED_ENV, None)
        argv = [sys.executable, "-S", "-P", "-m", "smars", *self.args]
        return os.posix_spawn(sys.executable, argv, env)

    def forward(self, signum: int, _frame: object = None) -> None:
        sig = signal.Signals(signum)
        if sig in _STOPPING:
            self.stopping = sig
        for pid in children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def run(self) -> int:
        for sig in _FORWARDED:
            signal.signal(sig, self.forward)
        supervised = become_subreaper()
        self.listen(os.environ.get("SMARS_CONTROL", "/run/smars/routerd.ctl"))
        first = self.start(supervised)
        if self.stopping is not None:
            self.forward(self.stopping)  # asked to stop before the router was there
        _log("info", "routerd_started", router=first, tree=self.tree, warm_switch=supervised)
        code = 0
        while True:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                if self.held.is_set() and self.stopping is None and self.wait_start():
                    entry = os.environ.get("SMARS_ENTRYPOINT", "/usr/local/bin/knight-node")
                    _log("info", "routerd_restart", entrypoint=entry)
                    os.execv(entry, [entry, "router", *self.args])
                _log("info", "routerd_exit", code=code)
                return code
            code = os.waitstatus_to_exitcode(status)
            if code < 0:
                code = 128 - code  # killed by a signal, as a shell reports it
            left = children()
            _log("info", "router_exited", pid=pid, code=code, running=left)
            if self.stopping is not None and left:
                # A standby that took over while the stop was on its way: stop it too.
                self.forward(self.stopping)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr)
        return 0 if argv else 2
    tree, *args = argv
    problem = _refuse(tree)
    if problem:
        print(f"routerd: {problem}", file=sys.stderr)
        return 78
    # The folder checked, resolved: every module of the router comes from it.
    return Keeper(os.path.realpath(tree), args).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
