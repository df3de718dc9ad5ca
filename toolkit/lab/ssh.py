"""A lab's ssh identity (the ssh transport): the deploy user's key, one host key per node, and
the known_hosts that pins them, all made on the host, per lab, and kept in the lab's state folder.

Private keys are written with mode 0600 in a folder of mode 0700; a node gets its own host key
and the deploy user's public key, never the deploy user's private key. known_hosts names each
node by the address the host reaches it at (`[127.0.0.1]:PORT`, its published sshd port).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from toolkit.errors import LabError

from .engine import FileEntry

__all__ = ["SSH_DIR", "SshKeys", "known_hosts_line", "make_key", "node_ssh_files"]

#: Inside a node: sshd's configuration (from the image), its host key and the deploy user's
#: authorized key (from the lab).
SSH_DIR = "/etc/ssh/knight"


def make_key(path: Path, comment: str) -> str:
    """Write a new ed25519 private key (OpenSSH format, mode 0600) and its `.pub`; return the
    public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = f"{public.decode()} {comment}"
    # Created with its final mode: never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    os.chmod(path, 0o600)
    path.with_name(path.name + ".pub").write_text(line + "\n")
    return line


def known_hosts_line(host: str, port: int, public_line: str) -> str:
    """A known_hosts entry pinning `public_line` (type, key, comment) for host:port."""
    kind, key = public_line.split()[:2]
    address = host if port == 22 else f"[{host}]:{port}"
    return f"{address} {kind} {key}"


@dataclass(frozen=True)
class SshKeys:
    """The ssh keys of one lab, in `folder` (the lab's state folder's `ssh/`)."""

    folder: Path

    @property
    def deploy_key(self) -> Path:
        """The deploy user's private key: what Ansible logs in with."""
        return self.folder / "deploy_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    def host_key(self, node: str) -> Path:
        return self.folder / "host_keys" / f"{node}_ed25519"

    def ensure(self, nodes: list[str]) -> None:
        """Make whatever key is missing: the deploy user's, and each node's host key."""
        (self.folder / "host_keys").mkdir(parents=True, exist_ok=True)
        for folder in (self.folder.parent, self.folder, self.folder / "host_keys"):
            os.chmod(folder, 0o700)
        if not self.deploy_key.exists():
            make_key(self.deploy_key, "smars-deploy@knight-lab")
        for node in nodes:
            if not self.host_key(node).exists():
                make_key(self.host_key(node), f"{node}@knight-lab")

    def public(self, private: Path) -> str:
        try:
            return private.with_name(private.name + ".pub").read_text().strip()
        except OSError:
            raise LabError(
                f"{private}.pub is missing: knight lab up makes the lab's keys"
            ) from None

    def write_known_hosts(self, ports: dict[str, int], host: str = "127.0.0.1") -> Path:
        """Pin each node's host key at the address the host reaches it at."""
        lines = [
            known_hosts_line(host, port, self.public(self.host_key(n))) for n, port in ports.items()
        ]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        return self.known_hosts


def node_ssh_files(keys: SshKeys, node: str, deploy_uid: int) -> list[FileEntry]:
    """What a node of the ssh transport gets in SSH_DIR: its host key, owned by the deploy user
    (sshd runs as that user) and readable by no one else; the key the deploy user logs in with."""
    return [
        FileEntry("ssh_host_ed25519_key", keys.host_key(node).read_bytes(), 0o600, uid=deploy_uid),
        FileEntry("authorized_keys", (keys.public(keys.deploy_key) + "\n").encode(), 0o644, uid=0),
    ]
