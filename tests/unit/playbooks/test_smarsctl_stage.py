"""smarsctl's stage and flip on a node's release folders (a temp dir here, through its SMARS_*
variables): what it downloads, what it unpacks, what it refuses, and what it never touches.

Each call runs the file as the playbooks send it (`python3 - stage ...`), against an artifact
server on 127.0.0.1; no router answers, so the standby stage asks for is reported as missing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SMARSCTL = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"

#: A release as the builder lays it out (smars/ and release.json), small and clean.
FILES = {
    "release.json": b'{"version": "8.0.1", "strategies": ["sor"], "flags": {}}\n',
    "smars/__init__.py": b'"""smars"""\n',
    "smars/__main__.py": b"print('running')\n",
    "smars/strategies/sor.py": b"NAME = 'sor'\n",
}


def tree_hash(files: dict[str, bytes]) -> str:
    """docs/protocol.md, by hand, over every file given."""
    listing = "".join(
        f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files, key=str.encode)
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def tarball(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass
class Artifacts:
    """What the server serves, by path; `/moved` redirects to `redirect`, `/unsized/...` serves
    without a Content-Length."""

    url: str
    blobs: dict[str, bytes]
    redirect: str = ""


@pytest.fixture
def artifacts() -> Iterator[Artifacts]:
    served = Artifacts("", {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", served.redirect)
                self.end_headers()
                return
            unsized = self.path.startswith("/unsized/")
            blob = served.blobs.get(self.path.removeprefix("/unsized"))
            if blob is None:
                self.send_error(404)
                return
            self.send_response(200)
            if not unsized:
                self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


@dataclass
class NodeDirs:
    home: Path
    pending: Path

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARS_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # what the stage step writes is its own doing
        return env | {
            "SMARS_HOME": str(self.home),
            "SMARS_ETC": str(self.home / "etc"),
            "SMARS_PID_FILE": str(self.home / "router.pid"),
            "SMARS_PENDING": str(self.pending),
            "SMARS_ADMIN_URL": "http://127.0.0.1:9",  # no router answers
            "SMARS_ADMIN_TOKEN": "t",
            **extra,
        }


@pytest.fixture
def node(tmp_path: Path) -> NodeDirs:
    dirs = NodeDirs(tmp_path / "opt-smars", tmp_path / "switch.pending")
    dirs.releases.mkdir(parents=True)
    return dirs


def smarsctl(node: NodeDirs, *args: str, **env: str) -> tuple[int, dict]:
    run = subprocess.run(
        [sys.executable, "-", *args],
        input=SMARSCTL.read_text(),  # as the playbooks send it
        capture_output=True,
        text=True,
        timeout=60,
        env=node.env(**env),
    )
    assert run.stdout, run.stderr
    return run.returncode, json.loads(run.stdout)


def stage(node: NodeDirs, artifacts: Artifacts, files: dict[str, bytes], **env: str):
    """Serve `files` as the artifact of 8.0.1 and stage it; the manifest's tree is the hash of
    every file but the *.pyc ones (what a hash that skipped bytecode would have said)."""
    blob = tarball(files)
    artifacts.blobs["/smars-8.0.1.tar.gz"] = blob
    tree = tree_hash({p: b for p, b in files.items() if not p.endswith(".pyc")})
    sha = hashlib.sha256(blob).hexdigest()
    url = env.pop("url", f"{artifacts.url}/smars-8.0.1.tar.gz")
    return smarsctl(node, "stage", "8.0.1", tree, sha, url, **env)


def left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_stage_unpacks_the_release_and_writes_no_bytecode(node, artifacts):
    code, out = stage(node, artifacts, FILES)
    assert code == 0, out
    assert (out["staged"], out["downloaded"]) == ("8.0.1", True)
    assert sorted(left_in(node.releases)) == sorted(
        ["8.0.1", "8.0.1/smars", "8.0.1/smars/strategies", *(f"8.0.1/{p}" for p in FILES)]
    )


def test_stage_refuses_an_artifact_that_holds_bytecode_and_leaves_nothing(node, artifacts):
    code, out = stage(node, artifacts, FILES | {"smars/strategies/evil.pyc": b"\0evil"})
    assert code == 1
    assert "smars/strategies/evil.pyc: bytecode:" in out["error"]
    assert left_in(node.releases) == []


def test_stage_refuses_a_staged_release_holding_stray_bytecode_naming_it(node, artifacts):
    assert stage(node, artifacts, FILES)[0] == 0
    stray = node.releases / "8.0.1" / "smars" / "stray.pyc"
    stray.write_bytes(b"\0")
    code, out = stage(node, artifacts, FILES)
    assert code == 1
    assert f"{stray}: bytecode:" in out["error"]
    assert stray.exists()  # evidence left for whoever looks into it


def test_verify_refuses_a_symlink_in_the_staged_release(node, artifacts):
    assert stage(node, artifacts, FILES)[0] == 0
    link = node.releases / "8.0.1" / "smars" / "extra.py"
    link.symlink_to("__main__.py")
    code, out = smarsctl(node, "verify", "8.0.1", tree_hash(FILES))
    assert code == 1
    assert f"{link}: a symlink:" in out["error"]


def test_stage_never_replaces_the_release_the_node_runs(node, artifacts):
    assert stage(node, artifacts, FILES)[0] == 0
    running = node.releases / "8.0.1"
    (node.home / "current").symlink_to("releases/8.0.1")
    (running / "smars" / "__main__.py").write_bytes(b"print('changed under the router')\n")
    inode = running.stat().st_ino
    code, out = stage(node, artifacts, FILES)
    assert code == 1
    assert "8.0.1 is the release the node runs" in out["error"]
    assert running.stat().st_ino == inode
    assert (
        running / "smars" / "__main__.py"
    ).read_bytes() == b"print('changed under the router')\n"
    assert [p for p in os.listdir(node.releases) if p != "8.0.1"] == []


def test_stage_replaces_a_damaged_copy_of_a_release_the_node_does_not_run(node, artifacts):
    assert stage(node, artifacts, FILES)[0] == 0
    (node.releases / "8.0.1" / "smars" / "__main__.py").write_bytes(b"damaged\n")
    code, out = stage(node, artifacts, FILES)
    assert (code, out["downloaded"]) == (0, True)
    assert (node.releases / "8.0.1" / "smars" / "__main__.py").read_bytes() == b"print('running')\n"
    assert sorted(os.listdir(node.releases)) == ["8.0.1"]


@pytest.mark.parametrize(
    "url", ["file:///etc/hostname", "ftp://127.0.0.1:9/smars-8.0.1.tar.gz", "data:,x"]
)
def test_stage_downloads_over_http_or_https_only(node, artifacts, url):
    code, out = stage(node, artifacts, FILES, url=url)
    assert code == 1
    assert out["error"] == f"download {url}: only http and https URLs are allowed"


def test_stage_follows_no_redirect_to_another_scheme(node, artifacts):
    artifacts.redirect = "ftp://127.0.0.1:9/smars-8.0.1.tar.gz"
    code, out = stage(node, artifacts, FILES, url=f"{artifacts.url}/moved")
    assert code == 1
    assert out["error"].endswith(
        f"redirected to {artifacts.redirect}: only http and https URLs are allowed"
    )


@pytest.mark.parametrize("sized", [True, False])
def test_stage_refuses_an_artifact_over_the_size_cap(node, artifacts, sized):
    files = FILES | {"smars/big.py": os.urandom(4096)}  # random: gzip cannot shrink it
    url = f"{artifacts.url}/{'' if sized else 'unsized/'}smars-8.0.1.tar.gz"
    code, out = stage(node, artifacts, files, url=url, SMARS_MAX_ARTIFACT_BYTES="2048")
    assert code == 1
    assert out["error"] == f"download {url}: over the 2048-byte cap"
    assert left_in(node.releases) == []


def test_stage_refuses_an_artifact_that_unpacks_over_the_size_cap(node, artifacts):
    files = FILES | {"smars/zeros.py": bytes(64 * 1024)}  # a few hundred bytes, gzipped
    code, out = stage(node, artifacts, files, SMARS_MAX_ARTIFACT_BYTES="8192")
    assert code == 1
    assert out["error"] == "artifact unpacks to over the 8192-byte cap"
    assert left_in(node.releases) == []


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("stage", ["../../etc", "a" * 64, "b" * 64, "http://127.0.0.1:9/x.tar.gz"]),
        ("verify", ["8.0.1/../../etc", "a" * 64]),
        ("switch", ["..", "a" * 64]),
        ("flip", ["8.0", "a" * 64]),
        ("restore", ["8.0.1\n", "a" * 64]),
    ],
)
def test_a_release_argument_that_is_not_a_version_is_refused(node, command, args):
    code, out = smarsctl(node, command, *args)
    assert code == 1
    assert out["error"] == f"release {args[0]!r}: expected MAJOR.MINOR.PATCH"


def test_flip_writes_no_pending_marker_naming_something_that_is_no_release(node, artifacts):
    """The marker becomes a folder name where it is read: what `current` points at must be a
    release before it is written there."""
    assert stage(node, artifacts, FILES)[0] == 0
    (node.home / "current").symlink_to("../elsewhere")
    code, out = smarsctl(node, "flip", "8.0.1", tree_hash(FILES))
    assert code == 1
    assert out["error"] == "current points at 'elsewhere', not a release: no switch from there"
    assert not node.pending.exists()
