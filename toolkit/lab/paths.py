"""Paths inside a router node (docs/protocol.md, "Node layout"): the one home for them, used by
the lab's specs and baseline primitives and by the chaos kinds."""

from __future__ import annotations

__all__ = [
    "CONTROL_PIPE",
    "PENDING_FILE",
    "PID_FILE",
    "SMARS_ETC",
    "SMARS_HOME",
    "SMARS_RELEASES",
]

#: The releases (`releases/<version>/`) and the `current` symlink to the one that runs.
SMARS_HOME = "/opt/smars"
#: The release trees, one folder each: the deploy user's, a volume of the node's own.
SMARS_RELEASES = f"{SMARS_HOME}/releases"
#: The node's settings: router.json, flags.json, fleet.json, guards.json.
SMARS_ETC = "/etc/smars"
#: The router's pid (a warm switch gives the router a new one).
PID_FILE = "/run/smars/router.pid"
#: A guarded flip not yet confirmed: the release to go back to.
PENDING_FILE = "/var/lib/smars/switch.pending"
#: routerd's control pipe: stop, kill, pause, cont and start the router (the smars group's).
CONTROL_PIPE = "/run/smars/routerd.ctl"
