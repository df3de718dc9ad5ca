"""smarsctl run by a node's deploy user, who is not the router's: it may not signal the router
(another uid, no CAP_KILL), so the switch is asked of the router's admin API instead."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SMARSCTL = Path(__file__).resolve().parents[3] / "playbooks" / "files" / "smarsctl.py"


def load_smarsctl():
    spec = importlib.util.spec_from_file_location("smarsctl_under_test", SMARSCTL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def admin():
    """A router's admin API that records the POSTs it is sent."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"switching": True, "pid": 4242}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_a_router_it_may_not_signal_is_asked_over_the_admin_api(admin, tmp_path, monkeypatch):
    url, seen = admin
    smarsctl = load_smarsctl()
    pid_file = tmp_path / "router.pid"
    pid_file.write_text("4242\n")
    monkeypatch.setattr(smarsctl, "PID_FILE", pid_file)
    monkeypatch.setattr(smarsctl, "ADMIN", url)
    monkeypatch.setenv("SMARS_ADMIN_TOKEN", "node-token")

    def kill(pid: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(smarsctl.os, "kill", kill)
    assert smarsctl._signal_router() == 4242
    assert seen == [("/switch", "Bearer node-token")]


def test_the_router_s_own_user_still_signals_it(admin, tmp_path, monkeypatch):
    url, seen = admin
    smarsctl = load_smarsctl()
    pid_file = tmp_path / "router.pid"
    pid_file.write_text("4242\n")
    monkeypatch.setattr(smarsctl, "PID_FILE", pid_file)
    monkeypatch.setattr(smarsctl, "ADMIN", url)
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(smarsctl.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    assert smarsctl._signal_router() == 4242
    assert sent == [(4242, smarsctl.signal.SIGUSR2)]
    assert seen == []
