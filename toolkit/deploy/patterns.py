"""The strict patterns of values that reach a playbook or a node's admin API, shared by the
operations (toolkit/deploy/operations.py) and the inventory check (toolkit/deploy/fleet.py)."""

from __future__ import annotations

import re

__all__ = ["EPOCH", "HEX64", "NODE_NAME", "URL"]

#: A node's inventory name: a host name. No `:`, `!`, `,`, `&` or `*`: an Ansible host pattern
#: (the `--limit` that leaves skipped nodes out) cannot be widened through it.
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: A tree hash or an artifact's SHA-256.
HEX64 = re.compile(r"[0-9a-f]{64}")
#: Where nodes download an artifact: http(s), a host, a port, a path of plain characters.
URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
#: A fleet manifest's epoch: milliseconds since 1970.
EPOCH = re.compile(r"[0-9]{1,19}")
