"""The lab on real containers: eight routers on the baseline, the contract of `lab status`,
loopback-only ports, a non-root user, idempotent `up`, and `down` that finds everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from toolkit.lab.engine import Engine
from toolkit.lab.lab import Lab
from toolkit.settings import LABEL, Settings, load_settings


def knight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )


def test_status_json_follows_the_contract(baseline: Lab):
    done = knight("lab", "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    names = [n["name"] for n in status["nodes"]]
    assert names == [f"smars-{i}" for i in range(1, 9)]
    tree = baseline.artifact("7.1.0").tree
    for node in status["nodes"]:
        assert {"name", "release", "tree", "flags", "healthy", "trading"} <= set(node)
        assert node["release"] == "7.1.0"
        assert node["tree"] == tree
        assert node["flags"] == {
            "flag_7": {"value": False, "meaning": "power_peg", "code_meaning": "power_peg"}
        }
        assert node["healthy"] is True
        assert node["trading"] == "active"
    assert status["venue"]["healthy"] is True
    assert status["venue"]["connected"] == names


def test_up_is_idempotent(lab: Lab):
    before = {c.name: c.id for c in lab.engine.containers()}
    lab.up()
    after = {c.name: c.id for c in lab.engine.containers()}
    assert after == before
    assert len(after) == 11  # eight routers, the venue, the client, the artifact store


def test_ports_are_published_on_loopback_only(lab: Lab):
    for container in lab.engine.containers():
        container.reload()
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (container.name, binding)


def test_every_role_runs_as_the_non_root_user(lab: Lab):
    for container in lab.engine.containers():
        code, out = lab.engine.exec(container, ["sh", "-c", "ps -o uid= -p 1; id -u"])
        assert code == 0, out
        # pid 1 is docker's init; the role's process is its child, and both run as 10001
        assert out.split() == ["10001", "10001"], (container.name, out)
        code, out = lab.engine.exec(container, ["sh", "-c", "ps -o uid= --ppid 1"])
        assert out.split() == ["10001"], (container.name, out)


def test_down_removes_every_labelled_thing_even_after_a_crash():
    settings = load_settings()
    small = Settings(lab=f"{settings.lab}-down", nodes=2, image=settings.image, root=settings.root)
    lab = Lab(small)
    try:
        lab.up()
        engine = Engine(small.lab)
        victim = engine.get(small.container("smars-1"))
        victim.kill()  # a crash leaves a dead container behind
        assert len(engine.containers()) == 5  # two nodes, venue, client, artifact store
        removed = lab.down()
        assert removed == {"containers": 5, "networks": 1, "volumes": 0}
        assert engine.containers() == []
        assert engine.client.networks.list(filters={"label": [f"{LABEL}={small.lab}"]}) == []
    finally:
        lab.down()
