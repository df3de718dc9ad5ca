"""Entry point: `python3 -S -P -m smars [--config PATH] [--flags PATH] [--state PATH]
[--pidfile PATH]`, with PYTHONPATH set to the release tree to run."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from . import switch
from .config import load_config
from .errors import SmarsError
from .log import Log
from .node import Node

__all__ = ["main"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -S -P -m smars", description=__doc__)
    parser.add_argument("--config", help="router.json (default: $SMARS_CONFIG or /etc/smars)")
    parser.add_argument("--flags", help="flags file, instead of the config's flags_path")
    parser.add_argument("--state", help="state file, instead of the config's state_path")
    parser.add_argument("--pidfile", help="pid file, instead of the config's pid_path")
    return parser.parse_args(argv)


def _survive_early_signals() -> None:
    """SIGHUP and SIGUSR2 kill a process that has no handler yet; until the node installs its
    own, ignore them. After a re-exec they are blocked instead (the old process did it), and
    stay pending: ignoring them now would discard them."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    for sig in (signal.SIGHUP, signal.SIGUSR2):
        if sig not in blocked:
            signal.signal(sig, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    _survive_early_signals()
    # A standby of a warm switch waits here, its imports done, until its router says `go`.
    prepared = switch.await_go()
    args_list = sys.argv[1:] if argv is None else argv
    args = _parse(args_list)
    overrides = {
        key: value
        for key, value in (
            ("flags_path", args.flags),
            ("state_path", args.state),
            ("pid_path", args.pidfile),
        )
        if value
    }
    try:
        config = load_config(args.config, overrides)
        node = Node(config, argv=args_list, release=prepared)
        return asyncio.run(node.run())
    except SmarsError as e:
        Log(os.environ.get("SMARS_NODE") or socket.gethostname()).error(
            "startup_failed", error=str(e)
        )
        print(f"smars: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
