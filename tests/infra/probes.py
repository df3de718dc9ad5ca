"""The node-side probes: small Python programs run on a node with `python3 -c` through any
testinfra transport (docker exec, ssh, ansible), each printing one JSON object.

A probe's source travels base64-encoded, so no shell, ssh or Ansible quoting can change it, and
it needs nothing on the node but python3's standard library. `command()` builds the command
line; `decode()` turns the node's answer into data or raises ProbeError with what the node said.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from typing import Any

__all__ = [
    "ADMIN_PORT",
    "ORDER_PORT",
    "ProbeError",
    "burst",
    "command",
    "decode",
    "order_prefix",
    "tree_hash",
    "version",
]

ORDER_PORT = 7001
ADMIN_PORT = 8001


class ProbeError(Exception):
    """A probe did not run on the node, or did not print what it should."""


# GET /version on the node's own admin port. Proxies are bypassed: a staging host may set
# http_proxy, and 127.0.0.1 must never go through one.
VERSION = """
import json, socket, sys, urllib.error, urllib.request
url = "http://127.0.0.1:%d/version" % int(sys.argv[1])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=float(sys.argv[2])) as resp:
        status, body = resp.status, resp.read()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read()
except OSError as e:
    sys.exit("%s did not answer: %s" % (url, getattr(e, "reason", e)))
print(json.dumps({"hostname": socket.gethostname(), "status": status,
                  "version": json.loads(body)}))
"""

# The tree hash of docs/protocol.md, recomputed from the files on disk: sha256 over
# "<sha256>  <relpath>\\n" lines sorted bytewise. A tree that holds what the hash would not
# cover (bytecode: *.pyc, __pycache__/; a symlink; neither file nor folder) is refused, naming
# the first such path: Python would run it unseen.
TREE_HASH = """
import hashlib, json, os, stat, sys
root = sys.argv[1]
if not os.path.isdir(root):
    sys.exit("%s: not a directory" % root)
entries, refused = [], []
for directory, subdirs, names in os.walk(root):
    descend = []
    for name in subdirs + names:
        path = os.path.join(directory, name)
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            why = "a symlink"
        elif name == "__pycache__" or name.endswith(".pyc"):
            why = "bytecode"
        elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            why = "neither a file nor a folder"
        else:
            why = None
        if why:
            refused.append((os.fsencode(path), "%s: %s" % (path, why)))
        elif stat.S_ISDIR(mode):
            descend.append(name)
        else:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 16), b""):
                    digest.update(block)
            entries.append((os.fsencode(os.path.relpath(path, root)), digest.hexdigest()))
    subdirs[:] = descend
if refused:
    refused.sort()
    more = " (%d more)" % (len(refused) - 1) if len(refused) > 1 else ""
    sys.exit("%s: a release tree holds only the files its hash covers%s" % (refused[0][1], more))
entries.sort()
listing = b"".join(h.encode() + b"  " + rel + b"\\n" for rel, h in entries)
print(json.dumps({"root": root, "files": len(entries),
                  "tree": hashlib.sha256(listing).hexdigest()}))
"""

# A pipelined burst of parent orders on one connection: every order is written at once (by a
# thread, so reading answers never waits for the writes), then answers are read until every
# parent is finished. Buys and sells alternate so the node's position nets out.
BURST = """
import json, socket, sys, threading, time
port, count, qty, prefix, timeout = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                     sys.argv[4], float(sys.argv[5]))
ids = ["%s-%d" % (prefix, i) for i in range(count)]
payload = b"".join(
    json.dumps({"type": "order", "id": oid, "symbol": "KCG",
                "side": "buy" if i % 2 == 0 else "sell", "qty": qty, "rlp": False}).encode()
    + b"\\n" for i, oid in enumerate(ids))
wanted = set(ids)
acked, filled, overfilled = set(), set(), set()
rejected, cancelled = {}, {}
sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
start = time.monotonic()
deadline = start + timeout
threading.Thread(target=sock.sendall, args=(payload,), daemon=True).start()
buf, finished_at = b"", None
while time.monotonic() < deadline:
    if len(filled | set(rejected) | set(cancelled)) >= count:
        break
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        chunk = sock.recv(1 << 16)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\\n")
    for line in lines:
        msg = json.loads(line)
        oid = msg.get("id")
        if oid not in wanted:
            continue
        kind = msg.get("type")
        if kind == "ack":
            acked.add(oid)
        elif kind == "reject":
            rejected[oid] = msg.get("reason")
        elif kind == "cancelled":
            cancelled[oid] = msg.get("reason")
        elif kind == "fill":
            if msg.get("cum", 0) > qty:
                overfilled.add(oid)
            if msg.get("leaves") == 0:
                filled.add(oid)
        finished_at = time.monotonic()
sock.close()
elapsed = (finished_at or time.monotonic()) - start
reasons = {}
for reason in list(rejected.values()) + list(cancelled.values()):
    reasons[reason] = reasons.get(reason, 0) + 1
print(json.dumps({"sent": count, "acked": len(acked), "filled": len(filled),
                  "rejected": len(rejected), "cancelled": len(cancelled),
                  "overfilled": len(overfilled), "reasons": reasons,
                  "unanswered": count - len(filled | set(rejected) | set(cancelled)),
                  "elapsed_s": round(elapsed, 4),
                  "orders_per_s": round(count / elapsed, 1) if elapsed > 0 else None}))
"""


def command(source: str, *args: object) -> str:
    """The shell command that runs `source` with `args` (sys.argv[1:]) under the node's python3."""
    encoded = base64.b64encode(source.encode()).decode()
    launcher = f"import base64;exec(base64.b64decode('{encoded}'))"
    return " ".join(["python3", "-c", shlex.quote(launcher), *(shlex.quote(str(a)) for a in args)])


def version(port: int = ADMIN_PORT, timeout: float = 5.0) -> str:
    """`{"hostname", "status", "version"}`: the node's host name and its `GET /version`."""
    return command(VERSION, port, timeout)


def tree_hash(root: str) -> str:
    """`{"root", "files", "tree"}`: the tree hash of the release directory `root`."""
    return command(TREE_HASH, root)


def burst(count: int, qty: int, prefix: str, port: int = ORDER_PORT, timeout: float = 30.0) -> str:
    """`{"sent", "acked", "filled", "rejected", "cancelled", "overfilled", "reasons",
    "unanswered", "elapsed_s", "orders_per_s"}` for `count` parent orders sent at once."""
    return command(BURST, port, count, qty, prefix, timeout)


def order_prefix(node: str, now: float) -> str:
    """A parent-order id prefix unique to this node and run, within the protocol's id rules
    (1–64 of `A-Z a-z 0-9 _ . : -`, leaving room for `-<index>`)."""
    clean = re.sub(r"[^A-Za-z0-9_.:-]", "_", node)[:32]
    return f"infra-{clean}-{int(now * 1000)}"


def decode(result: Any) -> dict[str, Any]:
    """The JSON a probe printed, from a testinfra CommandResult; ProbeError when it failed."""
    if result.rc != 0:
        said = (result.stderr or result.stdout or "").strip().splitlines()
        raise ProbeError(f"probe exited {result.rc}: {said[-1] if said else 'no output'}")
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ProbeError(f"probe printed no JSON: {result.stdout.strip()[:200]!r}") from None
    if not isinstance(answer, dict):
        raise ProbeError(f"probe printed {type(answer).__name__}, not an object")
    return answer
