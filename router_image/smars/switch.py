"""The mechanics of a release switch: check the new tree can run, then replace this process
with it (same pid) while the listening sockets stay open, so clients that connect meanwhile
wait in the backlog instead of being refused."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence

from .errors import ReleaseError
from .release import check_tree, load_release

__all__ = ["INHERIT_ENV", "SIGNALS", "inherited_fds", "reexec", "unrunnable"]

INHERIT_ENV = "SMARS_INHERIT_FDS"  # "order:5,admin:6"

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


def unrunnable(tree: str) -> str | None:
    """Why a new process could not start from `tree`, checked before giving up this one."""
    problem = check_tree(tree)
    if problem:
        return problem
    try:
        load_release(tree)
    except ReleaseError as e:
        return str(e)
    return None


def reexec(tree: str, argv: Sequence[str], fds: Mapping[str, int]) -> None:
    """`python3 -S -P -m smars ARGV` from `tree`, keeping `fds`; returns only by raising. No
    site module (-S): the router needs nothing from site-packages, and starts sooner."""
    env = dict(os.environ, PYTHONPATH=tree)
    env[INHERIT_ENV] = ",".join(f"{name}:{fd}" for name, fd in fds.items())
    for fd in fds.values():
        os.set_inheritable(fd, True)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-S", "-P", "-m", "smars", *argv], env)
    finally:  # only reached when execve failed
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in fds.values():
            os.set_inheritable(fd, False)
