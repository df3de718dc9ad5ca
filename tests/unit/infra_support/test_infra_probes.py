"""The node-side probes, run here on the local python3 exactly as a node runs them: the tree
hash matches the router's own, /version is read through any proxy setting, and the burst counts
every answer of a router."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import probes
import pytest
import testinfra
from smars.release import tree_hash

LOCAL = testinfra.get_host("local://")
ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def run(command: str) -> dict:
    return probes.decode(LOCAL.run(command))


# -- command / decode ---------------------------------------------------------------------------
def test_a_probe_runs_unchanged_whatever_quotes_and_newlines_it_holds():
    source = 'import json, sys\nprint(json.dumps({"args": sys.argv[1:], "q": "it\'s \\"x\\""}))\n'
    assert run(probes.command(source, "a b", "$HOME", "'")) == {
        "args": ["a b", "$HOME", "'"],
        "q": 'it\'s "x"',
    }


def test_a_probe_that_fails_raises_with_what_the_node_said():
    with pytest.raises(probes.ProbeError, match="probe exited 1: boom"):
        run(probes.command("import sys; sys.exit('boom')"))


def test_a_probe_that_prints_no_json_raises():
    with pytest.raises(probes.ProbeError, match="printed no JSON"):
        run(probes.command("print('hello')"))


# -- tree hash ----------------------------------------------------------------------------------
def test_tree_hash_is_the_routers_own_and_refuses_bytecode_and_symlinks(tmp_path: Path):
    (tmp_path / "smars" / "strategies").mkdir(parents=True)
    (tmp_path / "release.json").write_text('{"version": "7.1.0"}\n')
    (tmp_path / "smars" / "__init__.py").write_text("")
    (tmp_path / "smars" / "strategies" / "sor.py").write_text("X = 1\n")
    (tmp_path / "smars" / "Z.py").write_text("upper case sorts first, bytewise\n")
    clean = run(probes.tree_hash(str(tmp_path)))
    assert clean == {"root": str(tmp_path), "files": 4, "tree": tree_hash(tmp_path)}

    (tmp_path / "smars" / "strategies" / "sor.py").write_text("X = 2\n")
    assert run(probes.tree_hash(str(tmp_path)))["tree"] != clean["tree"]

    # Python runs bytecode and follows links: a tree holding either is refused, by name.
    (tmp_path / "smars" / "stray.pyc").write_bytes(b"\0")
    with pytest.raises(probes.ProbeError, match=r"smars/stray\.pyc"):
        run(probes.tree_hash(str(tmp_path)))
    (tmp_path / "smars" / "stray.pyc").unlink()
    os.symlink("release.json", tmp_path / "link.json")
    with pytest.raises(probes.ProbeError, match=r"link\.json"):
        run(probes.tree_hash(str(tmp_path)))


def test_tree_hash_of_a_missing_release_fails(tmp_path: Path):
    with pytest.raises(probes.ProbeError, match="not a directory"):
        run(probes.tree_hash(str(tmp_path / "9.9.9")))


# -- version ------------------------------------------------------------------------------------
@pytest.fixture
def admin_api() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"release": "7.1.0", "path": self.path}).encode()
            self.send_response(200 if self.path == "/version" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_version_asks_the_local_admin_api_even_behind_a_proxy(admin_api: int):
    answer = run(f"http_proxy=http://192.0.2.1:9 {probes.version(admin_api, timeout=2)}")
    assert answer == {
        "hostname": socket.gethostname(),
        "status": 200,
        "version": {"release": "7.1.0", "path": "/version"},
    }


def test_version_names_the_url_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(probes.ProbeError, match=f"http://127.0.0.1:{port}/version did not answer"):
        run(probes.version(port, timeout=1))


# -- burst --------------------------------------------------------------------------------------
def fake_router(answer) -> tuple[int, socket.socket]:
    """A one-connection order port that answers each parent order with `answer(order)` lines."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                order = json.loads(line)
                conn.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in answer(order)))

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1], server


def test_burst_counts_every_parent_acked_and_filled():
    seen: list[dict] = []

    def fill(order: dict) -> list[dict]:
        seen.append(order)
        oid, qty = order["id"], order["qty"]
        return [
            {"type": "ack", "id": oid},
            {"type": "fill", "id": oid, "qty": qty, "price": 20.0, "cum": qty, "leaves": 0},
        ]

    port, server = fake_router(fill)
    with server:
        result = run(probes.burst(50, 100, "infra-t-1", port=port, timeout=5))
    assert result["sent"] == result["acked"] == result["filled"] == 50
    assert result["rejected"] == result["cancelled"] == result["unanswered"] == 0
    assert result["orders_per_s"] > 0
    assert [o["id"] for o in seen] == [f"infra-t-1-{i}" for i in range(50)]
    assert {o["side"] for o in seen} == {"buy", "sell"}
    assert all(o["rlp"] is False and o["qty"] == 100 for o in seen)


def test_burst_reports_rejects_overfills_and_silence():
    def mixed(order: dict) -> list[dict]:
        oid, n = order["id"], int(order["id"].rsplit("-", 1)[1])
        if n % 3 == 0:
            return [{"type": "reject", "id": oid, "reason": "killed", "retry": False}]
        if n % 3 == 1:  # Power Peg: fills go on past the parent's quantity
            return [
                {"type": "ack", "id": oid},
                {"type": "fill", "id": oid, "qty": 100, "price": 20.0, "cum": 200, "leaves": 0},
            ]
        return [{"type": "ack", "id": oid}]  # never filled

    port, server = fake_router(mixed)
    with server:
        result = run(probes.burst(6, 100, "infra-t-2", port=port, timeout=1))
    assert result["rejected"] == 2 and result["reasons"] == {"killed": 2}
    assert result["acked"] == 4 and result["filled"] == 2 and result["overfilled"] == 2
    assert result["unanswered"] == 2


def test_order_ids_keep_to_the_protocol_for_any_node_name():
    prefix = probes.order_prefix("smars-1.staging.example/with spaces" * 3, 1_700_000_000.123)
    assert prefix == "infra-smars-1.staging.example_with_spa-1700000000123"
    assert ORDER_ID.fullmatch(f"{prefix}-99999")
