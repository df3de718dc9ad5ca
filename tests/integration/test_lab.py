"""The lab on real containers: eight routers on the baseline, the contract of `lab status`,
loopback-only ports, non-root users without privileges and within limits, a router that cannot
rewrite what the deploy put in place, a token per node, idempotent `up` that leaves alone what is
not the lab's, and `down` that finds everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest

from toolkit.lab.admin import AdminClient
from toolkit.lab.engine import Engine
from toolkit.lab.lab import Lab
from toolkit.lab.specs import ROUTER_RESOURCES, VENUE_RESOURCES
from toolkit.settings import LABEL, Settings, load_settings


def knight(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )


def test_verbose_shows_the_docker_calls_on_stderr_and_keeps_stdout_for_the_result(baseline: Lab):
    done = knight("-v", "lab", "status", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nodes"][0]["name"] == "smars-1"
    assert "knight.docker:" in done.stderr, done.stderr[-2000:]
    assert "list containers" in done.stderr
    assert baseline.token not in done.stderr
    quiet = knight("lab", "status", "--json")
    assert "knight.docker" not in quiet.stderr


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
        # the nodes' own volumes (their release trees) go with their containers
        assert removed == {"containers": 5, "networks": 1, "volumes": 0}
        assert engine.containers() == []
        assert engine.client.networks.list(filters={"label": [f"{LABEL}={small.lab}"]}) == []
        assert engine.client.volumes.list(filters={"label": [f"{LABEL}={small.lab}"]}) == []
    finally:
        lab.down()


def test_up_refuses_a_container_that_only_bears_a_lab_name_and_leaves_it_alone():
    settings = load_settings()
    small = Settings(lab=f"{settings.lab}-own", nodes=3, image=settings.image, root=settings.root)
    client = docker.from_env()
    impostor = client.containers.run(
        settings.image,
        ["600"],
        entrypoint=["sleep"],
        name=small.container("smars-3"),  # a lab container's name, not the lab's label
        detach=True,
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "toolkit.cli", "lab", "up"],
            capture_output=True,
            text=True,
            env={**os.environ, "KNIGHT_LAB": small.lab, "KNIGHT_NODES": "3"},
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert (
            f"container {small.container('smars-3')} is not lab {small.lab!r}'s "
            f"(it lacks the label {LABEL}={small.lab})"
        ) in done.stderr
        impostor.reload()
        assert impostor.status == "running"
        assert client.containers.get(small.container("smars-3")).id == impostor.id
        # refused before anything was made
        assert Engine(small.lab).containers() == []
        assert client.networks.list(filters={"label": [f"{LABEL}={small.lab}"]}) == []
    finally:
        impostor.remove(force=True)
        Lab(small).down()


def test_every_container_runs_without_privileges_and_within_limits(lab: Lab):
    limits = {"router": ROUTER_RESOURCES, "venue": VENUE_RESOURCES}
    for container in lab.engine.containers():
        container.reload()
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], container.name
        assert host["SecurityOpt"] == ["no-new-privileges:true"], container.name
        assert not host["Privileged"]
        assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"], container.name
        assert host["PidsLimit"] > 0, container.name
        wanted = limits.get(container.labels["knight.role"])
        if wanted is not None:
            assert (host["Memory"], host["PidsLimit"]) == (wanted.memory, wanted.pids)
        # as the kernel sees the role's process (pid 1 is docker's init, its child the role)
        code, out = lab.engine.exec(
            container,
            ["sh", "-c", "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/$(pgrep -P 1)/status"],
        )
        assert code == 0, out
        assert out.split() == [
            "CapPrm:",
            "0000000000000000",
            "CapEff:",
            "0000000000000000",
            "NoNewPrivs:",
            "1",
        ], container.name
        code, out = lab.engine.exec(
            container,
            [
                "sh",
                "-c",
                "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
            ],
        )
        assert out.strip() == str(host["PidsLimit"]), container.name


#: What the deploy put in place on a node, which its router must not be able to change.
PROTECTED = [
    "/etc/smars/guards.json",
    "/etc/smars/fleet.json",
    "/etc/smars/flags.json",
    "/etc/smars/router.json",
    "/opt/smars/releases/7.1.0/release.json",
    "/opt/smars/releases/7.1.0/smars/wire.py",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_the_router_cannot_rewrite_what_the_deploy_put_in_place(baseline: Lab, path: str):
    node = baseline.engine.get(baseline.settings.container("smars-2"))
    router = str(baseline.settings.uid)
    _, before = baseline.engine.exec(node, ["cat", path])
    code, out = baseline.engine.exec(node, ["sh", "-c", f"echo x > {path}"], user=router)
    assert code != 0 and "Permission denied" in out, out
    code, out = baseline.engine.exec(
        node, ["sh", "-c", f"rm -f {path}; mv {path} {path}.x"], user=router
    )
    assert code != 0, out
    assert baseline.engine.exec(node, ["cat", path]) == (0, before)
    # the deploy user may (a deploy writes these)
    code, out = baseline.engine.exec(node, ["test", "-w", path], user=baseline.settings.deploy_user)
    assert code == 0, out


def test_the_router_cannot_add_to_nor_swap_its_release_trees(baseline: Lab):
    node = baseline.engine.get(baseline.settings.container("smars-2"))
    router = str(baseline.settings.uid)
    listing = ["sh", "-c", "cd /opt/smars/releases && find . | sort"]
    _, before = baseline.engine.exec(node, listing)
    for script in (
        "touch /opt/smars/releases/7.1.0/smars/extra.py",
        "mkdir /opt/smars/releases/9.9.9",
        "mv /opt/smars/releases/7.1.0 /opt/smars/releases/7.1.1",
        "mv /opt/smars/releases /opt/smars/releases.old",  # a mount point
        "rm -rf /opt/smars/releases",
        "echo '{}' > /etc/smars/extra.json",
    ):
        code, out = baseline.engine.exec(node, ["sh", "-c", script], user=router)
        assert code != 0, (script, out)
    assert baseline.engine.exec(node, listing) == (0, before)
    assert "./7.1.0/smars/wire.py" in before.split()
    # what the router does write: its state, its pid, the pending marker, the `current` link
    for folder in ("/var/lib/smars", "/run/smars", "/opt/smars"):
        assert baseline.engine.exec(node, ["test", "-w", folder], user=router)[0] == 0, folder
    assert baseline.status().nodes[1].healthy


def test_each_node_opens_with_its_own_token_only(baseline: Lab):
    one, two = baseline.node_admin("smars-1"), baseline.node_admin("smars-2")
    stolen = AdminClient("smars-2", int(two.base.rsplit(":", 1)[1]), one._token)
    assert stolen.request("POST", "/intake/resume").status == 401
    assert two.request("POST", "/intake/resume").status == 200
    venue = baseline.venue_admin()
    as_node = AdminClient("venue", int(venue.base.rsplit(":", 1)[1]), one._token)
    assert as_node.request("POST", "/reset", {}).status == 401
    # the lab secret is in no container's environment; the hello token is the same everywhere
    envs = {c.name: Engine.env_of(c) for c in baseline.engine.containers()}
    assert not [n for n, env in envs.items() if baseline.token in env.values()]
    venue_env = envs[baseline.settings.container("venue")]
    hellos = {env["SMARS_VENUE_TOKEN"] for env in envs.values() if "SMARS_VENUE_TOKEN" in env}
    assert hellos == {venue_env["VENUE_HELLO_TOKEN"]}
    tokens = {env["SMARS_ADMIN_TOKEN"] for env in envs.values() if "SMARS_ADMIN_TOKEN" in env}
    assert len(tokens) == baseline.settings.nodes
