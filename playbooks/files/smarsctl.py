#!/usr/bin/env python3
"""smarsctl: what a playbook does on one router node, as one call per phase.

The playbooks send this file inline with each `raw` task (`python3 - COMMAND ARGS <<EOF`), so a
node needs nothing but python3 and the same playbooks work over docker exec or ssh. Every
command prints one JSON object on stdout; a failure prints {"error": ...} and exits 1.
Standard library only: it runs on the node, beside whatever release is installed there.
"""

from __future__ import annotations

import compileall
import hashlib
import inspect
import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HOME = Path(os.environ.get("SMARS_HOME", "/opt/smars"))
ETC = Path(os.environ.get("SMARS_ETC", "/etc/smars"))
PID_FILE = Path(os.environ.get("SMARS_PID_FILE", "/run/smars/router.pid"))
ADMIN = os.environ.get("SMARS_ADMIN_URL", "http://127.0.0.1:8001")
TOKEN_FILE = ETC / "admin.token"
#: Written by a guarded flip, removed when the fleet is verified (resume) or put back (restore):
#: a node that restarts with it still there goes back to the release it names (knight-node).
PENDING = Path(os.environ.get("SMARS_PENDING", "/var/lib/smars/switch.pending"))


class Failed(Exception):
    """The command cannot do what it was asked; the message goes to the playbook."""


# -- the node's own view -----------------------------------------------------------------------


def tree_hash(root: Path) -> str:
    """docs/protocol.md: sha256 over `<sha256>  <path>` lines, sorted bytewise."""
    lines = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append((rel.as_posix().encode(), f"{digest}  {rel.as_posix()}\n"))
    text = "".join(line for _, line in sorted(lines))
    return hashlib.sha256(text.encode()).hexdigest()


def token() -> str:
    found = os.environ.get("SMARS_ADMIN_TOKEN")
    if found:
        return found
    try:
        return TOKEN_FILE.read_text().strip()
    except OSError:
        raise Failed(f"no admin token (SMARS_ADMIN_TOKEN or {TOKEN_FILE})") from None


def admin(method: str, path: str, timeout: float = 2.0) -> tuple[int, dict]:
    req = urllib.request.Request(
        ADMIN + path, data=b"{}" if method == "POST" else None, method=method
    )
    if method == "POST":
        req.add_header("Authorization", f"Bearer {token()}")
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise Failed(f"admin API {path}: {getattr(e, 'reason', e)}") from None


def post(path: str) -> dict:
    status, body = admin("POST", path)
    if status != 200:
        raise Failed(f"POST {path} answered {status}: {body}")
    return body


def current_release() -> str | None:
    try:
        return Path(os.readlink(HOME / "current")).name
    except OSError:
        return None


def identity() -> dict:
    """What the node runs (from the router itself) and what its `current` points at."""
    status, health = admin("GET", "/health")
    _, version = admin("GET", "/version")
    return {
        "current": current_release(),
        "release": version.get("release"),
        "tree": version.get("tree"),
        "config_hash": version.get("config_hash"),
        "flags": version.get("flags"),
        "trading": version.get("trading"),
        "intake": version.get("intake"),
        "started_at": version.get("started_at"),
        "pid": version.get("pid"),
        "healthy": status == 200,
        "venue": health.get("venue"),
    }


# -- commands ----------------------------------------------------------------------------------


def cmd_status() -> dict:
    return identity()


def cmd_preflight(min_free_mb: str = "50") -> dict:
    """Can this node take a deploy: router up and healthy, trading, disk for a release."""
    ident = identity()
    problems = []
    if not ident["healthy"]:
        problems.append(f"unhealthy (venue {ident['venue']})")
    if ident["trading"] != "active":
        problems.append(f"trading is {ident['trading']}")
    if ident["current"] != ident["release"]:
        problems.append(f"current -> {ident['current']} but it runs {ident['release']}")
    free_mb = shutil.disk_usage(HOME).free // 2**20
    if free_mb < int(min_free_mb):
        problems.append(f"{free_mb} MB free in {HOME}")
    if problems:
        raise Failed("preflight: " + "; ".join(problems))
    return ident | {"free_mb": free_mb}


def _verify(version: str, tree: str) -> Path:
    folder = HOME / "releases" / version
    if not (folder / "release.json").is_file():
        raise Failed(f"release {version} is not staged in {folder}")
    found = tree_hash(folder)
    if found != tree:
        raise Failed(
            f"release {version}: staged tree {found[:12]} is not the manifest's {tree[:12]}"
        )
    return folder


def cmd_stage(version: str, tree: str, sha256: str, url: str) -> dict:
    """Download the artifact, check its checksum, unpack it beside the others, check the tree."""
    releases = HOME / "releases"
    try:
        _verify(version, tree)
        return {"staged": version, "tree": tree, "downloaded": False}
    except Failed:
        pass
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            blob = resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise Failed(f"download {url}: {getattr(e, 'reason', e)}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise Failed(f"artifact checksum {digest[:12]} is not the manifest's {sha256[:12]}")
    partial = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=releases))
    try:
        with tempfile.TemporaryFile() as raw:
            raw.write(blob)
            raw.seek(0)
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                _extract(tar, partial)
        found = tree_hash(partial)
        if found != tree:
            raise Failed(f"unpacked tree {found[:12]} is not the manifest's {tree[:12]}")
        # Bytecode now, not at the switch: the router's restart is part of the intake pause.
        # (__pycache__ is not part of the tree, so the hash stays the manifest's.)
        compileall.compile_dir(str(partial), quiet=1)
        target = releases / version
        if target.exists():
            shutil.rmtree(target)  # a damaged copy: replaced by the verified one
        os.rename(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {
        "staged": version,
        "tree": tree,
        "downloaded": True,
        "stage_s": round(time.monotonic() - started, 3),
    }


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """Unpack plain files and directories only, never outside `into` (older Pythons lack the
    tarfile `data` filter, so the check is done here)."""
    for member in tar.getmembers():
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise Failed(f"artifact member {member.name!r} refused")
        target = into / name
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise Failed(f"artifact member {member.name!r} unreadable")
        target.write_bytes(source.read())


def cmd_verify(version: str, tree: str) -> dict:
    _verify(version, tree)
    return {"verified": version, "tree": tree}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _point_current_at(version: str) -> None:
    link = HOME / "current.new"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(f"releases/{version}", link)
    os.replace(link, HOME / "current")  # rename(2): the switch is atomic


def _signal_router() -> int:
    try:
        pid = int(PID_FILE.read_text().strip())
        os.kill(pid, signal.SIGUSR2)
    except (OSError, ValueError) as e:
        raise Failed(f"cannot signal the router ({PID_FILE}): {e}") from None
    return pid


def _wait_running(tree: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            ident = identity()
            if ident["tree"] == tree and ident["healthy"]:
                return ident
            last = ident
        except Failed as e:
            last = str(e)  # the router is between two processes
        time.sleep(0.02)
    raise Failed(f"not running tree {tree[:12]} after {timeout}s (last: {last})")


def cmd_switch(version: str, tree: str, timeout: str = "15") -> dict:
    """Point `current` at a staged release and make the router run it; wait until it does."""
    _verify(version, tree)
    previous = current_release()
    if previous == version and identity()["tree"] == tree:
        return {"release": version, "tree": tree, "previous": previous, "switched": False}
    _point_current_at(version)
    switched_at = time.time()
    _signal_router()
    ident = _wait_running(tree, float(timeout))
    return ident | {
        "previous": previous,
        "switched": True,
        "switched_at": switched_at,
        "running_at": time.time(),
    }


def cmd_flip(version: str, tree: str, timeout: str = "15", at: str = "0") -> dict:
    """The guarded deploy's flip: re-check the staged tree, wait for the instant the controller
    chose for the whole fleet (`at`, epoch seconds), pause intake, switch, stay paused."""
    _verify(version, tree)
    delay = float(at) - time.time()
    if delay > 0:
        time.sleep(min(delay, 5.0))  # every node flips together, however late its task began
    previous = current_release()
    if previous and previous != version:
        _write(PENDING, previous + "\n")
    paused = post("/intake/pause")
    paused_at = time.time()
    return cmd_switch(version, tree, timeout) | {
        "intake": paused.get("intake", "paused"),
        "paused_at": paused_at,
    }


def cmd_restore(version: str, tree: str, timeout: str = "15") -> dict:
    """The rescue: back to the release the node ran before, then intake open again."""
    result = {"release": current_release()}
    if version and (current_release() != version or identity()["tree"] != tree):
        result = cmd_switch(version, tree, timeout)
    PENDING.unlink(missing_ok=True)
    post("/intake/resume")
    return result | {"intake": "open"}


def cmd_pause() -> dict:
    return post("/intake/pause") | {"paused_at": time.time()}


def cmd_resume() -> dict:
    """The fleet runs the new release: the switch is committed, intake opens."""
    PENDING.unlink(missing_ok=True)
    return post("/intake/resume") | {"resumed_at": time.time()}


def cmd_kill() -> dict:
    return post("/kill")


def cmd_resume_trading() -> dict:
    return post("/resume")


def cmd_flag(name: str, value: str, meaning: str) -> dict:
    """Set one flag in the node's flags file (atomically) and make the router re-read it."""
    if value not in ("on", "off"):
        raise Failed(f"flag value must be on or off, not {value!r}")
    path = ETC / "flags.json"
    try:
        doc = json.loads(path.read_text())
        flags = doc["flags"]
    except (OSError, ValueError, KeyError, TypeError):
        doc, flags = {"flags": {}}, {}
        doc["flags"] = flags
    flags[name] = {"value": value == "on", "meaning": meaning}
    _write(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    reloaded = post("/reload")
    if reloaded.get("flags_error"):
        raise Failed(f"router refused the flags file: {reloaded['flags_error']}")
    return {
        "flag": name,
        "value": value == "on",
        "meaning": meaning,
        "flags": reloaded.get("flags"),
    }


COMMANDS = {
    "status": cmd_status,
    "preflight": cmd_preflight,
    "stage": cmd_stage,
    "verify": cmd_verify,
    "switch": cmd_switch,
    "flip": cmd_flip,
    "restore": cmd_restore,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "kill": cmd_kill,
    "resume-trading": cmd_resume_trading,
    "flag": cmd_flag,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(json.dumps({"error": f"usage: smarsctl {{{','.join(COMMANDS)}}} ARGS"}))
        return 2
    command = COMMANDS[argv[0]]
    try:
        inspect.signature(command).bind(*argv[1:])
    except TypeError as e:
        print(json.dumps({"error": f"{argv[0]}: bad arguments ({e})"}))
        return 2
    try:
        result = command(*argv[1:])
    except Failed as e:
        print(json.dumps({"error": str(e), "node": os.uname().nodename}))
        return 1
    print(json.dumps(result | {"node": os.uname().nodename, "at": time.time()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
