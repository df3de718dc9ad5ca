"""The paths of a router node (docs/protocol.md, "Node layout") have deliberate copies: the
toolkit's, the router's configuration defaults, the node agent's, the container entry point's
and the testinfra suite's. They must name the same places."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from pathlib import PurePosixPath as P

from smars.config import Config

from toolkit.lab import paths

ROOT = Path(__file__).resolve().parents[2]


def _smarsctl(monkeypatch):
    for name in ("SMARS_HOME", "SMARS_ETC", "SMARS_PID_FILE", "SMARS_PENDING"):
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location(
        "smarsctl_paths", ROOT / "playbooks" / "files" / "smarsctl.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _constants(path: Path) -> dict[str, str]:
    """The module-level string constants of a testinfra test file, read without importing it."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def test_every_copy_names_the_same_node_paths(monkeypatch):
    router = Config(node="smars-1")
    agent = _smarsctl(monkeypatch)
    infra = {}
    for name in ("test_release.py", "test_router_process.py", "test_flags.py"):
        infra |= _constants(ROOT / "tests" / "infra" / name)

    home = P(paths.SMARS_HOME)
    assert P(router.current_path) == home / "current" == P(infra["CURRENT"])
    assert P(agent.HOME) == home
    assert P(paths.SMARS_RELEASES) == home / "releases" == P(infra["RELEASES"])

    etc = P(paths.SMARS_ETC)
    assert {P(router.flags_path).parent, P(router.fleet_path).parent} == {etc}
    assert P(router.guards_path).parent == etc == P(agent.ETC)
    assert P(infra["FLAGS_FILE"]) == etc / "flags.json" == P(router.flags_path)

    assert P(paths.PID_FILE) == P(router.pid_path) == P(agent.PID_FILE) == P(infra["PID_FILE"])
    assert P(paths.PENDING_FILE) == P(router.pending_path) == P(agent.PENDING)


def test_the_container_entry_point_uses_the_same_pending_marker_and_home():
    script = (ROOT / "router_image" / "bin" / "knight-node").read_text()
    assert f"pending={paths.PENDING_FILE}" in script
    assert f"{paths.SMARS_HOME}/current" in script
