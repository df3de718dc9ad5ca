"""Commands on one host of a fleet over ssh, with the connection its inventory declares: the one
module that runs `ssh` itself (Ansible runs its own).

An experiment through an inventory needs a few things between Ansible runs that must be quick
and streamed (the load generator's progress, a node's admin call that only the node may make
with its own token): `Remote.run` runs one command, its arguments quoted for the login shell,
with host keys checked as the inventory says, no password and no prompt, and a connection kept
open for the next command (ControlPersist, in a folder of this inventory's own).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from toolkit.errors import LabError

from .fleet import FleetHost

__all__ = ["SSH_TIMEOUT_S", "Remote"]

log = logging.getLogger("knight.ssh")

#: The most a command that is not streamed may take (a node's admin call, a file written).
SSH_TIMEOUT_S = 120.0


class Remote:
    """One fleet host reached over ssh as its inventory says (ansible_host, ansible_port,
    ansible_user, ansible_ssh_private_key_file, ansible_ssh_common_args)."""

    def __init__(self, host: FleetHost, control_dir: Path) -> None:
        self.host = host
        self.control_dir = control_dir

    def argv(self, command: list[str]) -> list[str]:
        """The ssh command line that runs `command` on the host."""
        v = self.host.variables
        if v.get("ansible_connection", "ssh") != "ssh":
            raise LabError(f"{self.host.name}: reached by {v['ansible_connection']}, not ssh")
        line = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30"]
        line += ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]
        line += ["-o", f"ControlPath={self.control_dir}/%C"]
        if "ansible_port" in v:
            line += ["-p", v["ansible_port"]]
        if "ansible_ssh_private_key_file" in v:
            line += ["-i", str(Path(v["ansible_ssh_private_key_file"]).expanduser())]
        # Checked in the inventory: only `-o Name=value` pairs of plain characters.
        line += v.get("ansible_ssh_common_args", "").split()
        address = v.get("ansible_host", self.host.name)
        line += [f"{v['ansible_user']}@{address}", "--", shlex.join(command)]
        return line

    def run(
        self, command: list[str], stdin: bytes | None = None, timeout: float = SSH_TIMEOUT_S
    ) -> tuple[int, str]:
        """Run `command`; (exit code, combined output). 255 is ssh's own failure."""
        log.debug("ssh %s: %s", self.host.name, shlex.join(command))
        try:
            done = subprocess.run(
                self.argv(command),
                input=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.host.name}: no answer over ssh in {timeout:g}s") from None
        return done.returncode, done.stdout.decode(errors="replace")

    def stream(
        self, command: list[str], on_stderr: Callable[[str], None] | None
    ) -> tuple[int, bytes]:
        """Run `command`, each stderr line to `on_stderr` as it comes; (exit code, stdout)."""
        log.debug("ssh (streamed) %s: %s", self.host.name, shlex.join(command))
        proc = subprocess.Popen(
            self.argv(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lines: list[str] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                if line.strip():
                    lines.append(line)
                    if on_stderr:
                        on_stderr(line)

        reader = threading.Thread(target=read_stderr, name=f"ssh-{self.host.name}", daemon=True)
        reader.start()
        assert proc.stdout is not None
        out = proc.stdout.read()
        code = proc.wait()
        reader.join(timeout=5)
        if code == 255 and not out:  # ssh's own failure: say what ssh said
            raise LabError(f"{self.host.name}: ssh failed: {' '.join(lines[-3:])}")
        return code, out

    def put(self, path: str, data: bytes) -> None:
        """Replace the file `path` with `data` (written beside it, then renamed: atomically)."""
        script = 'umask 022; cat > "$1.knight-new" && mv -f "$1.knight-new" "$1"'
        code, out = self.run(["sh", "-c", script, "sh", path], stdin=data)
        if code != 0:
            raise LabError(f"{self.host.name}: cannot write {path}: {out.strip()[-300:]}")
