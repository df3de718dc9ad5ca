"""Each node runs one SMARS router process, as a non-root user, and its pid file names it."""

from __future__ import annotations

import re
from typing import Any

from testinfra.host import Host

PID_FILE = "/run/smars/router.pid"
SMARS_COMMAND = re.compile(r"(\S*/)?python3(\.\d+)?\s+-S\s+-P\s+-m\s+smars(\s.*)?")


def test_router_process_runs_as_a_non_root_user(host: Host, version: dict[str, Any]):
    router = host.process.get(pid=version["pid"])
    assert router.uid != 0, f"the router (pid {router.pid}) runs as {router.user}"


def test_router_command_line_is_the_smars_router(host: Host, version: dict[str, Any]):
    router = host.process.get(pid=version["pid"])
    assert SMARS_COMMAND.fullmatch(router.args), router.args


def test_pid_file_names_the_running_router(host: Host, version: dict[str, Any]):
    # The release switch signals the pid in this file: a stale one would miss the router.
    assert host.file(PID_FILE).content_string.strip() == str(version["pid"])
