"""smarsctl's `baseline`: what an experiment through an inventory does on each node before a run,
in one call: no pending switch, working orders cancelled then trading and intake open, the fleet
manifest, the router's guard switches and the flags written and re-read; no switch when the node
already runs the baseline's tree."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SMARSCTL = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"
TREE = "ab" * 32


@pytest.fixture
def router():
    """A router's admin API that runs TREE and records the POSTs it is sent."""
    posts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer({"release": "7.1.0", "tree": TREE} if self.path == "/version" else {})

        def do_POST(self) -> None:
            posts.append(self.path)
            self._answer({})

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", posts
    server.shutdown()


def test_baseline_puts_the_node_back_in_one_call(router, tmp_path, monkeypatch):
    url, posts = router
    spec = importlib.util.spec_from_file_location("smarsctl_baseline", SMARSCTL)
    smarsctl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smarsctl)
    etc, pending = tmp_path / "etc", tmp_path / "switch.pending"
    etc.mkdir()
    pending.write_text("8.0.0\n")
    monkeypatch.setattr(smarsctl, "ETC", etc)
    monkeypatch.setattr(smarsctl, "PENDING", pending)
    monkeypatch.setattr(smarsctl, "ADMIN", url)
    monkeypatch.setenv("SMARS_ADMIN_TOKEN", "node-token")
    guards = {"fencing": True, "flags": False, "risk": True}
    flags = {"flag_7": {"value": False, "meaning": "power_peg"}}
    args = ("7.1.0", TREE, "cd" * 32, "http://artifacts:8080/7.1.0/a.tar.gz", "1700000000000")
    result = smarsctl.cmd_baseline(*args, json.dumps(guards), json.dumps(flags))
    assert result["switched"] is False
    assert posts == ["/kill", "/resume", "/intake/resume", "/reload"]
    assert not pending.exists()
    manifest = json.loads((etc / "fleet.json").read_text())
    assert manifest == {"release": "7.1.0", "tree": TREE, "epoch": 1700000000000}
    assert json.loads((etc / "guards.json").read_text()) == guards
    assert json.loads((etc / "flags.json").read_text()) == {"flags": flags}
    with pytest.raises(smarsctl.Failed, match="must be JSON"):
        smarsctl.cmd_baseline(*args, "{not json", "{}")
