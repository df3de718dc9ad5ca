#!/usr/bin/env python3
"""smarsctl: what a playbook does on one router node, as one call per phase.

The playbooks send this file inline with each `raw` task (`python3 - COMMAND ARGS <<EOF`), so a
node needs nothing but python3 and the same playbooks work over docker exec or ssh. Every
command prints one JSON object on stdout; a failure prints {"error": ...} and exits 1.
Standard library only: it runs on the node, beside whatever release is installed there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tarfile

# tarfile is imported by the stage step alone: every other step (eight nodes at once, on the
# deploy's clock) starts without its imports.

HOME = Path(os.environ.get("SMARS_HOME", "/opt/smars"))
ETC = Path(os.environ.get("SMARS_ETC", "/etc/smars"))
PID_FILE = Path(os.environ.get("SMARS_PID_FILE", "/run/smars/router.pid"))
ADMIN = os.environ.get("SMARS_ADMIN_URL", "http://127.0.0.1:8001")
TOKEN_FILE = ETC / "admin.token"
#: Written by a guarded flip, removed when the fleet is verified (resume) or put back (restore):
#: a node that restarts with it still there goes back to the release it names (knight-node).
PENDING = Path(os.environ.get("SMARS_PENDING", "/var/lib/smars/switch.pending"))
#: Arming waits for the router's standby to be ready (its imports, under the load of a flip).
ARM_TIMEOUT_S = 12.0
#: The most an artifact may weigh, downloaded and unpacked alike (a release is some 100 KB).
MAX_ARTIFACT_BYTES = int(os.environ.get("SMARS_MAX_ARTIFACT_BYTES", str(64 * 2**20)))
#: A flip handed to a process of its own (flip-start) keeps its id, its decision and its
#: result here, in the node's state, for flip-wait and for a rescue that must stop it.
FLIP_DIR = Path(os.environ.get("SMARS_FLIP_DIR", str(PENDING.parent / "flip")))
FLIP_PID, FLIP_DECISION, FLIP_RESULT = "pid", "decision", "result.json"
#: A release's version, and so its folder's name (and the pending marker's content).
VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
TREE = re.compile(r"[0-9a-f]{64}")


class Failed(Exception):
    """The command cannot do what it was asked; the message goes to the playbook."""


# -- the node's own view -----------------------------------------------------------------------


class Unclean(Failed):
    """A release tree holds what its hash does not cover: never hashed, never replaced."""


def _refusal(name: str, mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if name == "__pycache__" or name.endswith(".pyc"):
        return "bytecode"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "neither a file nor a folder"
    return None


def tree_hash(root: Path) -> str:
    """docs/protocol.md: sha256 over `<sha256>  <path>` lines, sorted bytewise. A tree holding
    bytecode, a symlink or anything but files and folders is refused (Unclean), naming the
    first such path: Python would run it and the hash would not see it."""
    lines, refused = [], []
    for directory, subdirs, names in os.walk(root):
        base = Path(directory)
        descend = []
        for name in subdirs + names:
            path = base / name
            mode = path.lstat().st_mode
            why = _refusal(name, mode)
            rel = path.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
            if why:
                refused.append((rel, f"{path}: {why}"))
            elif stat.S_ISDIR(mode):
                descend.append(name)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                # A name that is not UTF-8 is hashed as its raw bytes, as the router does.
                lines.append((rel, digest.encode() + b"  " + rel + b"\n"))
        subdirs[:] = descend
    if refused:
        refused.sort()
        more = f" ({len(refused) - 1} more)" if len(refused) > 1 else ""
        raise Unclean(f"{refused[0][1]}: a release tree holds only the files its hash covers{more}")
    return hashlib.sha256(b"".join(line for _, line in sorted(lines))).hexdigest()


def _check(version: str, tree: str | None = None) -> None:
    """A release and a tree as a playbook passes them: the version becomes a folder name (and
    a pending marker), the tree goes into the router's admin URLs."""
    if not VERSION.fullmatch(version):
        raise Failed(f"release {version!r}: expected MAJOR.MINOR.PATCH")
    if tree is not None and not TREE.fullmatch(tree):
        raise Failed(f"tree {tree!r}: expected 64 lowercase hex digits")


def token() -> str:
    found = os.environ.get("SMARS_ADMIN_TOKEN")
    if found:
        return found
    try:
        return TOKEN_FILE.read_text().strip()
    except OSError:
        raise Failed(f"no admin token (SMARS_ADMIN_TOKEN or {TOKEN_FILE})") from None


class Unanswered(Exception):
    """No HTTP answer: nobody listening, the connection cut, the time up, or not HTTP."""


def request(method: str, url: str, timeout: float, bearer: str | None = None) -> tuple[int, dict]:
    """One request to a router's admin API and its JSON answer, whatever the status.

    A few lines over a socket rather than urllib: importing urllib.request costs a node some
    70 ms of CPU, at every step of every deploy, on every node at once. Only plain http URLs
    are asked this way (the admin APIs); anything else goes through urllib."""
    scheme, _, rest = url.partition("://")
    if scheme != "http":
        return _request_urllib(method, url, timeout, bearer)
    authority, _, path = rest.partition("/")
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit():
        host, port = authority, "80"
    lines = [f"{method} /{path} HTTP/1.1", f"Host: {authority}", "Connection: close"]
    if method == "POST":
        lines += [f"Authorization: Bearer {bearer}", "Content-Type: application/json"]
        lines += ["Content-Length: 2", "", "{}"]
    else:
        lines += ["", ""]
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
            sock.sendall("\r\n".join(lines).encode())
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(body or b"{}")
    except (OSError, ValueError, IndexError) as e:
        raise Unanswered(str(e) or type(e).__name__) from None


def _request_urllib(method: str, url: str, timeout: float, bearer: str | None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    if method == "POST":
        req.add_header("Authorization", f"Bearer {bearer}")
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError as bad:
            raise Unanswered(str(bad)) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise Unanswered(str(getattr(e, "reason", e))) from None


def admin(method: str, path: str, timeout: float = 2.0) -> tuple[int, dict]:
    try:
        return request(method, ADMIN + path, timeout, token() if method == "POST" else None)
    except Unanswered as e:
        raise Failed(f"admin API {path}: {e}") from None


def post(path: str, timeout: float = 10.0) -> dict:
    """POST to the node's own router. The bound is generous: a router answers in milliseconds,
    but on a machine whose cores a whole fleet shares, one busy starting up (a 32-node lab
    switching at once) was measured taking over 2 s."""
    status, body = admin("POST", path, timeout)
    if status != 200:
        raise Failed(f"POST {path} answered {status}: {body}")
    return body


def current_release() -> str | None:
    try:
        return Path(os.readlink(HOME / "current")).name
    except OSError:
        return None


def _runs(version: str) -> bool:
    """Whether `current` points at the folder of `version`: the tree the router runs."""
    current, folder = HOME / "current", HOME / "releases" / version
    return current.exists() and os.path.realpath(current) == os.path.realpath(folder)


def _previous_release() -> str | None:
    """The release `current` points at, which a flip names in the pending marker: a folder
    of the releases beside the one to switch to, or nothing is written and nothing flips."""
    name = current_release()
    if name is None:
        return None
    folder = Path(os.path.realpath(HOME / "current"))
    if not VERSION.fullmatch(name) or folder != Path(os.path.realpath(HOME / "releases")) / name:
        raise Failed(f"current points at {name!r}, not a release: no switch from there")
    return name


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
    fs = os.statvfs(HOME)
    free_mb = fs.f_bavail * fs.f_frsize // 2**20
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
    """Download the artifact, check its checksum, unpack it beside the others, check the tree;
    then have the router warm a standby of it. A staged copy that holds what its hash does not
    cover is refused (someone put it there: look, do not paper over it); one that does not
    match is replaced, unless it is the tree the router runs."""
    _check(version, tree)
    try:
        _verify(version, tree)
        staged = {"staged": version, "tree": tree, "downloaded": False}
    except Unclean:
        raise
    except Failed as e:
        _replaceable(version, str(e))
        staged = _download(version, tree, sha256, url)
    return staged | {"standby": _prepare(version, tree)}


def _replaceable(version: str, why: str) -> None:
    """Failed when the folder of `version` is the one the router runs: its files are never
    replaced under it (it hashed them when it started)."""
    if _runs(version):
        raise Failed(f"release {version} is the release the node runs: not replaced ({why})")


def _prepare(version: str, tree: str) -> dict | None:
    """Ask the router to start a standby of the staged release (it imports while the deploy
    checks the rest of the fleet, so the flip hands over instead of starting an interpreter).
    Best effort: without it the switch re-executes, which is slower, not wrong."""
    try:
        status, body = admin("POST", f"/switch/prepare?tree={tree}&release={version}")
    except Failed as e:
        return {"pid": None, "error": str(e)}
    if status != 200:
        return {"pid": None, "error": f"answered {status}: {body}"}
    return body.get("standby")


def _http_only(url: str, what: str) -> None:
    import urllib.parse

    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise Failed(f"{what}: only http and https URLs are allowed")


def _fetch(url: str) -> bytes:
    """The artifact's bytes, over http(s) only (redirects too), at most MAX_ARTIFACT_BYTES:
    a node's disk and memory are not for whatever a URL serves."""
    import urllib.error
    import urllib.request

    class SameSchemes(urllib.request.HTTPRedirectHandler):
        """Redirects are followed to http(s) only (urllib's own rule lets ftp through)."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            _http_only(newurl, f"redirected to {newurl}")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    _http_only(url, f"download {url}")
    opener = urllib.request.build_opener(SameSchemes)
    try:
        with opener.open(url, timeout=10) as resp:
            size = resp.headers.get("Content-Length", "")
            big = size.isdigit() and int(size) > MAX_ARTIFACT_BYTES
            blob = b"" if big else resp.read(MAX_ARTIFACT_BYTES + 1)
    except Failed as e:  # a redirect refused
        raise Failed(f"download {url}: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Failed(f"download {url}: {getattr(e, 'reason', e)}") from None
    if big or len(blob) > MAX_ARTIFACT_BYTES:
        raise Failed(f"download {url}: over the {MAX_ARTIFACT_BYTES}-byte cap")
    return blob


def _download(version: str, tree: str, sha256: str, url: str) -> dict:
    import shutil
    import tarfile
    import tempfile

    releases = HOME / "releases"
    started = time.monotonic()
    blob = _fetch(url)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise Failed(f"artifact checksum {digest[:12]} is not the manifest's {sha256[:12]}")
    # Unpacked beside the others under a temporary name, checked, then renamed into place: a
    # release folder is whole or absent. No bytecode is compiled into it: a release tree holds
    # only what its hash covers (the router runs with -B and imports from the sources).
    partial = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=releases))
    partial.chmod(0o755)  # mkdtemp makes it private; a release is readable like its siblings
    try:
        with tempfile.TemporaryFile() as raw:
            raw.write(blob)
            raw.seek(0)
            with tarfile.open(fileobj=raw, mode="r:gz") as tar:
                _extract(tar, partial)
        found = tree_hash(partial)
        if found != tree:
            raise Failed(f"unpacked tree {found[:12]} is not the manifest's {tree[:12]}")
        target = releases / version
        if target.exists():
            _replaceable(version, "a copy that does not match")  # checked again: last moment
            # A damaged copy, replaced by the verified one. Moved aside first: the rename needs
            # only the releases folder, whoever owns the copy's files.
            # (Same folder: moving a directory elsewhere would need write access to it too.)
            damaged = releases / f".{version}.damaged.{os.getpid()}"
            os.rename(target, damaged)
            shutil.rmtree(damaged, ignore_errors=True)
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
    tarfile `data` filter, so the check is done here), and at most MAX_ARTIFACT_BYTES."""
    total = 0
    for member in tar:
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise Failed(f"artifact member {member.name!r} refused")
        target = into / name
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        total += member.size
        if total > MAX_ARTIFACT_BYTES:
            raise Failed(f"artifact unpacks to over the {MAX_ARTIFACT_BYTES}-byte cap")
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise Failed(f"artifact member {member.name!r} unreadable")
        target.write_bytes(source.read())


def cmd_verify(version: str, tree: str) -> dict:
    _check(version, tree)
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
    except PermissionError:
        # A deploy user that is not the router's own may not signal it: ask its admin API.
        post("/switch")
    except (OSError, ValueError) as e:
        raise Failed(f"cannot signal the router ({PID_FILE}): {e}") from None
    return pid


def _version(url: str, timeout: float) -> dict | None:
    """GET /version; None while nobody answers. A router between two processes keeps its
    listening socket, so the request waits in the backlog and the new process answers it:
    one request, not a busy poll that would take CPU from the routers starting up."""
    try:
        status, body = request("GET", url + "/version", timeout)
    except Unanswered:
        return None
    return body if status == 200 else None


def _wait_tree(url: str, tree: str, deadline: float) -> bool:
    """Wait until the router at `url` runs `tree`: a long poll that its router answers once it
    does (or its switch cuts it short: asked again, the new process answers), so a fleet of N
    waiting for one another makes some N * N requests in all, not that many every few ms."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        wait = min(left, 5.0)
        asked = time.monotonic()
        try:
            status, body = request(
                "GET", f"{url}/switch/armed?tree={tree}&running=1&wait={wait:.2f}", wait + 2
            )
        except Unanswered:
            status, body = 0, {}
        if status == 200 and body.get("tree") == tree:
            return True
        if time.monotonic() - asked < 0.2:
            time.sleep(0.05)  # answered at once (refused, or cut by its switch): ask again soon


def _wait_running(tree: str, timeout: float) -> dict:
    """Wait until the router runs `tree` (a long poll) and is healthy (its venue connection
    up). Health is asked again after a pause that doubles up to 0.2 s: a whole fleet's new
    processes connect to the venue at once, on the cores this wait would otherwise take."""
    deadline = time.monotonic() + timeout
    last: object = None
    pause = 0.01
    while _wait_tree(ADMIN, tree, deadline):
        try:
            ident = identity()
        except Failed as e:
            ident = last = str(e)
        if isinstance(ident, dict):
            if ident["tree"] == tree and ident["healthy"]:
                return ident
            last = ident
        time.sleep(pause)  # running, the venue connection not up yet
        pause = min(pause * 2, 0.2)
    raise Failed(f"not running tree {tree[:12]} after {timeout}s (last: {last})")


def cmd_switch(version: str, tree: str, timeout: str = "15", *, checked: bool = False) -> dict:
    """Point `current` at a staged release and make the router run it; wait until it does."""
    if not checked:
        _check(version, tree)
        _verify(version, tree)
    previous = current_release()
    if previous == version:
        ident = identity()
        if ident["tree"] == tree:
            return ident | {"previous": previous, "switched": False}
    _point_current_at(version)
    switched_at = time.time()
    pid = _signal_router()
    ident = _wait_running(tree, float(timeout))
    return ident | {
        "previous": previous,
        "switched": True,
        "switched_at": switched_at,
        "running_at": time.time(),
        # Warm: the router handed over to its standby (a new pid); else it re-executed itself.
        "warm": ident.get("pid") != pid,
    }


def cmd_flip(
    version: str, tree: str, timeout: str = "15", peers: str = "", epoch: str = "0"
) -> dict:
    """The guarded deploy's flip on one node, in one call: `flip-start` and `flip-wait` in one
    process. Fit for a fleet that fits in one batch of the deploy tool's forks (every node must
    reach the rendezvous while the others wait there); the playbooks use the two halves."""
    begun_at = time.time()
    previous = _flip_checks(version, tree)
    _fresh_flip_dir()
    armed = _ready_standby(version, tree)
    urls = [u for u in peers.split(",") if u]
    return _flip(version, tree, previous, armed, urls, epoch, timeout, timeout) | {
        "begun_at": begun_at
    }


def cmd_flip_start(
    version: str, tree: str, arm_timeout: str, timeout: str, peers: str, epoch: str = "0"
) -> dict:
    """The first half of the guarded deploy's flip on one node, which returns at once.

    Re-check the staged tree, have the router's standby of it ready, and hand the rest of the
    flip (rendezvous, pending marker, switch, wait for the fleet, fence, resume: `_flip`) to a
    process of its own, detached from this task, whose result `flip-wait` reads. So the deploy
    tool need not hold every node of the fleet in one batch of its forks: the nodes armed
    first wait in their own processes (up to `arm_timeout` seconds) while it goes on with the
    next batch. A flip of an earlier deploy still waiting on this node is stopped first.
    """
    begun_at = time.time()
    previous = _flip_checks(version, tree)
    urls = [u for u in peers.split(",") if u]
    if not urls:
        raise Failed("flip-start: no peers (a lone node flips with `flip`)")
    float(arm_timeout), float(timeout)  # numbers, checked before anything is handed over
    # Whether the flip will switch this node, asked before it is handed over (the last node to
    # arm switches at once): not when the node already runs the tree, a re-deploy of the
    # running release, which changes nothing (its switch returns switched=False).
    switches = current_release() != version or identity()["tree"] != tree
    stopped = _fresh_flip_dir()
    armed = _ready_standby(version, tree)

    def flip() -> dict:
        return _flip(version, tree, previous, armed, urls, epoch, arm_timeout, timeout)

    pid = _detach(lambda: _run_background(flip, begun_at))
    return {
        "flipping": pid,
        "standby": armed.get("standby"),
        "stopped_earlier": stopped,
        "switches": switches,
    }


def cmd_flip_wait(timeout: str) -> dict:
    """The second half: wait (at most `timeout` seconds) for the result of the flip that
    `flip-start` handed to this node, and report it as `flip` would have."""
    deadline = time.monotonic() + float(timeout)
    while True:
        result = _flip_result()
        if result is None and not _background_alive():
            result = _flip_result()  # it may have written it just before it ended
            if result is None:
                raise Failed("the flip handed to this node ended without a result")
        if result is not None:
            if result.get("error"):
                raise Failed(str(result["error"]))
            return result
        if time.monotonic() >= deadline:
            raise Failed(f"no result of this node's flip after {timeout}s")
        time.sleep(0.05)


def _flip_checks(version: str, tree: str) -> str | None:
    """The staged tree checked again, and the release the pending marker will name (it becomes
    a folder name): both before this node arms."""
    _check(version, tree)
    _verify(version, tree)
    return _previous_release()


def _fresh_flip_dir() -> str | None:
    """FLIP_DIR, emptied for a new flip: an earlier one still waiting is stopped first (what
    `_stop_background` found is returned)."""
    stopped = _stop_background()
    FLIP_DIR.mkdir(mode=0o700, exist_ok=True)
    for name in (FLIP_RESULT, FLIP_DECISION, FLIP_PID):
        (FLIP_DIR / name).unlink(missing_ok=True)
    return stopped


def _ready_standby(version: str, tree: str) -> dict:
    """The router's standby of the new release, ready (its imports done; stage started it)."""
    return post(f"/switch/prepare?tree={tree}&release={version}&wait=1", ARM_TIMEOUT_S)


def _flip(
    version: str,
    tree: str,
    previous: str | None,
    armed: dict,
    urls: list[str],
    epoch: str,
    arm_timeout: str,
    timeout: str,
) -> dict:
    """The flip once the standby is ready: arm and wait until every peer (the admin URLs of the
    whole fleet) is armed too, so the fleet flips together however far apart the deploy tool
    started the nodes (at most `arm_timeout` seconds). Then, unless the flip was stopped
    meanwhile, write the pending marker (the new process takes no order while it names another
    release), switch, and wait until every peer runs the new tree (at most `timeout` seconds
    each); only then commit the switch (remove the marker) and open intake, so no order meets
    the old release after the new one has traded. Without peers the node flips at once and
    stays closed to orders until `resume` commits it (or undoes itself after the confirm
    window). With an `epoch` (fencing), the fleet manifest for the new release is written
    before intake opens, so a fenced router trades as soon as the fleet runs what it says.
    """
    if urls:
        _rendezvous(urls, version, tree, time.monotonic() + float(arm_timeout))
    if not _decide(GO):
        raise Failed("flip stopped before the switch: the deploy is putting the fleet back")
    flip_at = time.time()
    if previous and previous != version:
        # The new process sees the marker and takes no order until `resume` removes it; if
        # nobody ever does, it goes back to `previous` by itself. No explicit pause: a flip
        # cut short before the switch leaves the node as it was, trading.
        _write(PENDING, previous + "\n")
    paused_at = time.time()
    result = cmd_switch(version, tree, timeout, checked=True) | {
        "intake": "paused",
        "flip_at": flip_at,
        "paused_at": paused_at,
    }
    result["standby"] = armed.get("standby")  # what the router said of it when asked to ready it
    if urls:
        deadline = time.monotonic() + float(timeout)
        running: dict[str, bool] = {}
        # Every peer at once: asked one after the other, 32 peers would hold intake closed
        # for 32 round trips.
        _together(lambda u: running.__setitem__(u, _wait_tree(u, tree, deadline)), urls)
        behind = [u for u in urls if not running.get(u)]
        if behind:
            raise Failed(f"fleet not on tree {tree[:12]} in {timeout}s: {', '.join(behind)}")
        result["fleet_running_at"] = time.time()
        if epoch != "0":
            result["fleet"] = cmd_fence(version, tree, epoch)["fleet"]
        result |= cmd_resume()
        result["intake"] = "open"
    return result


def _rendezvous(urls: list[str], version: str, tree: str, deadline: float) -> None:
    """Arm this node for `tree` and wait until every peer is armed too (or already runs it).

    The peers are asked once just before arming: the last node to arrive then finds everyone
    armed and flips at once, instead of asking peers that, having just seen it arm, are already
    switching (its question would wait for their new processes). The others long-poll, all at
    once, only the peers not armed yet; a peer's arming answers them at once.
    """
    ready: dict[str, bool] = {}

    def ask(url: str, wait: float) -> bool:
        status, body = request("GET", f"{url}/switch/armed?tree={tree}&wait={wait:.2f}", wait + 2)
        return status == 200 and bool(body.get("ready"))

    def glance(url: str) -> None:
        try:
            ready[url] = ask(url, 0)
        except Unanswered:
            ready[url] = False

    def wait_for(url: str) -> None:
        while not _stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                if ask(url, min(left, 5.0)):
                    ready[url] = True
                    return
            except Unanswered:
                time.sleep(0.05)  # not answering yet: ask again

    # The standby is ready (the caller saw to it): the peers cannot see that yet. A peer that
    # sees this node armed flips at once, and then answers nothing until its new process runs,
    # so what this node learns of its peers must be learnt between its last glance and its
    # arming, a moment with nothing in it.
    _together(glance, urls)
    post(f"/switch/arm?tree={tree}&release={version}", ARM_TIMEOUT_S)
    _together(wait_for, [u for u in urls if not ready.get(u)])
    late = [u for u in urls if not ready.get(u)]
    if late and not _stopped():
        raise Failed(f"not armed for tree {tree[:12]} in time: {', '.join(late)}")


def _together(work, urls: list[str]) -> None:
    threads = [threading.Thread(target=work, args=(url,), daemon=True) for url in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- a flip handed over to a process of its own ---------------------------------------------------
# flip-start leaves three files in FLIP_DIR: the process's id, the decision (made once, by
# whoever comes first: the flip, when it is about to switch, or a rescue that stops it) and the
# flip's result. The decision is what makes a rescue safe: once it says stop, no flip switches
# this node; once it says go, the rescue waits for the switch to end and then puts it back.

GO, STOP = "go", "stop"


def _decide(word: str) -> bool:
    """Make the decision `word` unless one was made; whether the decision is `word`."""
    path = FLIP_DIR / FLIP_DECISION
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return path.read_text().strip() == word
        except OSError:
            return False
    with os.fdopen(fd, "w") as f:
        f.write(word + "\n")
    return True


def _stopped() -> bool:
    try:
        return (FLIP_DIR / FLIP_DECISION).read_text().strip() == STOP
    except OSError:
        return False


def _flip_result() -> dict | None:
    try:
        return json.loads((FLIP_DIR / FLIP_RESULT).read_text())
    except (OSError, ValueError):
        return None


def _background_pid() -> int | None:
    """The flip process flip-start left, while it runs (not a zombie, not another program)."""
    try:
        pid = int((FLIP_DIR / FLIP_PID).read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if state != "Z" and b"flip-start" in command else None


def _background_alive() -> bool:
    return _background_pid() is not None


def _stop_background(wait_s: float = 30.0) -> str | None:
    """Make sure no flip handed to this node switches it from now on: decide `stop`, or, when
    the flip already decided to go, wait (at most `wait_s`: its switch and its wait for the
    fleet are bounded by the switch timeout each) for it to end, so that what follows
    (the rescue puts the node back) comes after its switch, never during it. Returns what was
    found: None (nothing running), "stopped" or "finished"."""
    pid = _background_pid()
    if pid is None:
        return None
    if _decide(STOP):
        found = "stopped"
    else:
        found = "finished"
        deadline = time.monotonic() + wait_s
        while _background_alive() and _flip_result() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    if _background_pid() == pid and (found == "stopped" or _flip_result() is None):
        # Stopped, it only waits for peers (or, past `wait_s`, it is stuck): end it now.
        os.kill(pid, signal.SIGTERM)
    return found


def _run_background(flip, begun_at: float) -> None:
    """The detached flip: its result, or its error, written for flip-wait."""
    try:
        result = flip() | {"begun_at": begun_at}
    except Failed as e:
        result = {"error": str(e)}
    except Exception as e:  # anything at all: flip-wait must learn of it, and the rescue runs
        result = {"error": f"flip: {type(e).__name__}: {e}"}
    result |= {"node": os.uname().nodename, "at": time.time()}
    _write(FLIP_DIR / FLIP_RESULT, json.dumps(result))


def _detach(work) -> int:
    """Run `work` in a grandchild in a session of its own, its standard streams on /dev/null
    (the deploy tool's connection ends with this task, not with it); return its pid once it
    has written it to FLIP_DIR."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                os.close(read_end)
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                _write(FLIP_DIR / FLIP_PID, str(os.getpid()))
                os.write(write_end, str(os.getpid()).encode())
                os.close(write_end)
                work()
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    if not answer:
        raise Failed("the flip could not be handed to a process of its own")
    return int(answer)


def cmd_fence(version: str, tree: str, epoch: str) -> dict:
    """Write the fleet manifest (what the whole fleet runs) and make the router re-read it: a
    router with fencing on refuses to trade while its running tree differs from it."""
    _check(version, tree)
    manifest = {"release": version, "tree": tree, "epoch": int(epoch)}
    _write(ETC / "fleet.json", json.dumps(manifest, sort_keys=True) + "\n")
    reloaded = post("/reload")
    return {"fleet": reloaded.get("fleet", manifest)}


def cmd_restore(version: str, tree: str, timeout: str = "15", epoch: str = "0") -> dict:
    """The rescue: back to the release the node ran before, then intake open again. A flip
    that flip-start handed to this node is stopped first (or, already switching, waited for):
    nothing flips this node after its rescue."""
    if version:
        _check(version, tree)
    stopped = _stop_background(2 * float(timeout))
    result = {"release": current_release()}
    if version and (current_release() != version or identity()["tree"] != tree):
        result = cmd_switch(version, tree, timeout)
    if epoch != "0":
        result |= cmd_fence(version, tree, epoch)
    PENDING.unlink(missing_ok=True)
    post("/intake/resume")
    return result | {"intake": "open", "flip_stopped": stopped}


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


def cmd_reload(times: str = "1") -> dict:
    """Make the router re-read its settings (flags, fleet manifest, guard switches), `times`
    times over (each re-read of a flag its code means otherwise is one error it logs)."""
    if not times.isdigit() or not 1 <= int(times) <= 10_000:
        raise Failed(f"reload: times {times!r} is not 1 to 10000")
    for _ in range(int(times) - 1):
        post("/reload")
    return post("/reload") | {"reloads": int(times)}


def cmd_baseline(
    version: str,
    tree: str,
    sha256: str,
    url: str,
    epoch: str,
    guards: str,
    flags: str,
    timeout: str = "15",
) -> dict:
    """The node back on the baseline a run starts from (an experiment reaching the fleet
    through an inventory): no switch pending; every working order cancelled, then trading and
    intake open again; the fleet manifest, the router's guard switches and the flags (`guards`
    and `flags` as JSON) written and re-read; and the release `version` running, staged from
    `url` first when it is not there."""
    _check(version, tree)
    try:
        switches, entries = json.loads(guards), json.loads(flags)
    except ValueError as e:
        raise Failed(f"baseline: guards and flags must be JSON ({e})") from None
    if not isinstance(switches, dict) or not isinstance(entries, dict):
        raise Failed("baseline: guards and flags must be JSON objects")
    PENDING.unlink(missing_ok=True)
    post("/kill")  # Power Peg's parents never end by themselves: cancel them, then trade again
    post("/resume")
    post("/intake/resume")
    manifest = {"release": version, "tree": tree, "epoch": int(epoch)}
    _write(ETC / "fleet.json", json.dumps(manifest, sort_keys=True) + "\n")
    _write(ETC / "guards.json", json.dumps(switches, sort_keys=True) + "\n")
    _write(ETC / "flags.json", json.dumps({"flags": entries}, indent=2, sort_keys=True) + "\n")
    reloaded = post("/reload")
    result = {"release": current_release(), "switched": False}
    if identity()["tree"] != tree:
        cmd_stage(version, tree, sha256, url)
        result = cmd_switch(version, tree, timeout)
    return result | {"flags_error": reloaded.get("flags_error")}


COMMANDS = {
    "status": cmd_status,
    "preflight": cmd_preflight,
    "stage": cmd_stage,
    "verify": cmd_verify,
    "switch": cmd_switch,
    "flip": cmd_flip,
    "flip-start": cmd_flip_start,
    "flip-wait": cmd_flip_wait,
    "restore": cmd_restore,
    "fence": cmd_fence,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "kill": cmd_kill,
    "resume-trading": cmd_resume_trading,
    "flag": cmd_flag,
    "reload": cmd_reload,
    "baseline": cmd_baseline,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(json.dumps({"error": f"usage: smarsctl {{{','.join(COMMANDS)}}} ARGS"}))
        return 2
    command = COMMANDS[argv[0]]
    # Arity from the code object (inspect alone would add ~25 ms of imports to every step).
    most = command.__code__.co_argcount
    least = most - len(command.__defaults__ or ())
    given = len(argv) - 1
    if not least <= given <= most:
        want = f"{least}" if least == most else f"{least} to {most}"
        print(json.dumps({"error": f"{argv[0]}: bad arguments (takes {want}, {given} given)"}))
        return 2
    try:
        result = command(*argv[1:])
    except Failed as e:
        print(json.dumps({"error": str(e), "node": os.uname().nodename}))
        return 1
    except OSError as e:  # the node's disk or files: one line for the playbook, not a traceback
        print(json.dumps({"error": f"{argv[0]}: {e}", "node": os.uname().nodename}))
        return 1
    print(json.dumps(result | {"node": os.uname().nodename, "at": time.time()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
