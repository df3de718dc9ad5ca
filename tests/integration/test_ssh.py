"""A lab reached over ssh, and knight driven through its inventory as a staging fleet would be:
sshd in every node as the deploy user, the lab's keys private on the host, host keys pinned; a
guarded deploy and rollback, flags and the kill switch through `--inventory`; a deploy against
a wrong pinned host key refused with a line that says so, no node changed; an experiment
through the inventory, unsafe and guarded, with no Docker engine for knight to call; and a
fault done and undone over ssh.

The ssh lab is a lab of its own (KNIGHT_LAB + "-ssh"), up once for this module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from tenacity import Retrying, stop_after_delay, wait_fixed

from toolkit.chaos.kinds import halt_all, make
from toolkit.deploy.fleet_lab import fleet_lab
from toolkit.errors import LabError
from toolkit.lab.lab import Lab
from toolkit.lab.ssh import make_key
from toolkit.settings import load_settings


@pytest.fixture(scope="module")
def ssh_lab() -> Lab:
    base = load_settings()
    lab = Lab(replace(base, lab=f"{base.lab}-ssh", transport="ssh"))
    if not lab.engine.image_exists(lab.settings.image):
        pytest.fail(f"the lab image {lab.settings.image} is missing: run `make image`")
    lab.up()
    yield lab
    if os.environ.get("KNIGHT_KEEP_LAB") != "1":
        lab.down()


def knight(lab: Lab, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """The knight CLI, as a user runs it, on the ssh lab (for `lab` commands)."""
    env = {**os.environ, "KNIGHT_LAB": lab.settings.lab}
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def inventory(ssh_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("staging") / "hosts.yml"
    knight(ssh_lab, "lab", "inventory", "--out", str(path), check=True)
    return path


def releases(lab: Lab, inventory: Path) -> dict[str, str | None]:
    doc = json.loads(knight(lab, "lab", "status", "--inventory", str(inventory), "--json").stdout)
    return {n["name"]: n["release"] for n in doc["nodes"]}


def ssh(lab: Lab, node: str, command: str, *options: str) -> subprocess.CompletedProcess:
    keys = lab.ssh_keys
    command_line = [
        "ssh",
        *("-p", str(lab.ssh_ports()[node]), "-i", str(keys.deploy_key)),
        *("-o", f"UserKnownHostsFile={keys.known_hosts}", "-o", "StrictHostKeyChecking=yes"),
        *("-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", *options),
        f"{lab.settings.deploy_user}@127.0.0.1",
        command,
    ]
    return subprocess.run(
        command_line,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_every_node_runs_sshd_as_the_deploy_user_and_keeps_no_capability(ssh_lab: Lab):
    for node in ssh_lab.settings.node_names:
        done = ssh(ssh_lab, node, "id -un; ps -o uid=,comm= -e; grep -h CapEff /proc/[0-9]*/status")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "smars-deploy"
        procs = {tuple(line.split()) for line in lines if not line.startswith("CapEff")}
        assert (str(ssh_lab.settings.deploy_uid), "sshd") in procs
        assert (str(ssh_lab.settings.uid), "python3") in procs
        # Every process but the container's init (docker-init, root, the two it started with).
        caps = [line.split()[1] for line in lines if line.startswith("CapEff")]
        assert caps.count("0000000000000000") == len(caps) - 1, caps
        assert "00000000000000c0" in caps


def test_the_lab_keys_are_private_and_password_login_is_refused(ssh_lab: Lab):
    keys = ssh_lab.ssh_keys
    assert keys.deploy_key.stat().st_mode & 0o777 == 0o600
    assert keys.host_key("smars-1").stat().st_mode & 0o777 == 0o600
    done = ssh(
        ssh_lab, "smars-1", "true", "-o", "PreferredAuthentications=password,keyboard-interactive"
    )
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr


def test_the_admin_token_is_the_deploy_users_alone(ssh_lab: Lab):
    done = ssh(ssh_lab, "smars-2", "stat -c '%U %a' /etc/smars/admin.token")
    assert done.stdout.strip() == "smars-deploy 600"
    code, out = ssh_lab.engine.exec(
        ssh_lab._container("smars-2"), ["cat", "/etc/smars/admin.token"]
    )  # as the router's user
    assert code != 0 and "Permission denied" in out


def test_a_guarded_deploy_and_rollback_through_the_inventory_leave_the_fleet_uniform(
    ssh_lab: Lab, inventory: Path
):
    ssh_lab.reset()
    nodes = ssh_lab.settings.node_names
    assert releases(ssh_lab, inventory) == dict.fromkeys(nodes, "7.1.0")
    done = knight(ssh_lab, "deploy", "8.0.0", "--inventory", str(inventory), "--json")
    result = json.loads(done.stdout)
    assert (done.returncode, result["status"]) == (0, "deployed"), result["error"]
    assert {n: v["after"] for n, v in result["nodes"].items()} == dict.fromkeys(nodes, "8.0.0")
    assert releases(ssh_lab, inventory) == dict.fromkeys(nodes, "8.0.0")
    done = knight(ssh_lab, "rollback", "--inventory", str(inventory), "--json")
    result = json.loads(done.stdout)
    assert (done.returncode, result["status"]) == (0, "deployed"), result["error"]
    assert releases(ssh_lab, inventory) == dict.fromkeys(nodes, "7.1.0")
    # The nodes fetched the release from the lab's artifact store, over its network.
    code, out = ssh_lab.engine.exec(ssh_lab._container("smars-1"), ["ls", "/opt/smars/releases"])
    assert code == 0
    assert out.split() == ["7.1.0", "8.0.0"]


def test_flags_and_the_kill_switch_through_the_inventory(ssh_lab: Lab, inventory: Path):
    ssh_lab.reset()
    inv = ["--inventory", str(inventory)]
    knight(ssh_lab, "flags", "set", "flag_7", "on", "--meaning", "power_peg", *inv, check=True)
    status = json.loads(knight(ssh_lab, "lab", "status", *inv, "--json").stdout)
    assert {n["flags"]["flag_7"]["value"] for n in status["nodes"]} == {True}
    knight(ssh_lab, "kill", *inv, check=True)
    status = json.loads(knight(ssh_lab, "lab", "status", *inv, "--json").stdout)
    assert {n["trading"] for n in status["nodes"]} == {"killed"}
    knight(ssh_lab, "resume", *inv, check=True)
    status = json.loads(knight(ssh_lab, "lab", "status", *inv, "--json").stdout)
    assert {n["trading"] for n in status["nodes"]} == {"active"}
    knight(ssh_lab, "flags", "set", "flag_7", "off", *inv, check=True)


def _node_state(lab: Lab) -> dict[str, str]:
    """What a deploy could change on each node: its release trees, the link, its settings."""
    script = (
        "ls -l --time-style=+%s.%N /opt/smars/releases; readlink /opt/smars/current; "
        "md5sum /etc/smars/*.json; test -e /var/lib/smars/switch.pending && echo pending || echo none"
    )
    state = {}
    for node in lab.settings.node_names:
        code, out = lab.engine.exec(lab._container(node), ["sh", "-c", script])
        assert code == 0, out
        state[node] = out
    return state


def test_a_deploy_against_a_wrong_pinned_host_key_is_refused_and_changes_no_node(
    ssh_lab: Lab, inventory: Path, tmp_path: Path
):
    ssh_lab.reset()
    # The same inventory, but smars-3's pinned key is another one: what a man in the middle,
    # or a node rebuilt without its key, would present.
    keys = ssh_lab.ssh_keys
    other = make_key(tmp_path / "other_ed25519", "someone-else").split()[:2]
    port = ssh_lab.ssh_ports()["smars-3"]
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(
            f"[127.0.0.1]:{port} {' '.join(other)}\n"
            if line.startswith(f"[127.0.0.1]:{port} ")
            else line + "\n"
            for line in keys.known_hosts.read_text().splitlines()
        )
    )
    wrong = tmp_path / "hosts.yml"
    wrong.write_text(inventory.read_text().replace(str(keys.known_hosts), str(known)))
    before = _node_state(ssh_lab)
    done = knight(ssh_lab, "deploy", "8.0.0", "--inventory", str(wrong), "--json")
    result = json.loads(done.stdout)
    assert done.returncode == 1
    assert result["status"] == "refused"
    assert result["error"].startswith("smars-3: host key verification failed")
    assert {v["after"] for v in result["nodes"].values()} == {"7.1.0"}
    assert _node_state(ssh_lab) == before


# -- tests/infra over ssh: the same verdicts as through docker ---------------------------------
#: The suite's checks of what a node runs (the fleet-wide one names every node that differs):
#: enough for the verdict, at a fraction of the whole suite's time.
VERDICT = ["-k", "test_fleet or test_release"]


def ssh_config(lab: Lab, path: Path) -> Path:
    """An ssh_config naming each node as a host, with the lab's key and its known_hosts."""
    keys = lab.ssh_keys
    path.write_text(
        "".join(
            f"Host {node}\n  HostName 127.0.0.1\n  Port {port}\n"
            f"  User {lab.settings.deploy_user}\n  IdentityFile {keys.deploy_key}\n"
            f"  UserKnownHostsFile {keys.known_hosts}\n  StrictHostKeyChecking yes\n"
            "  IdentitiesOnly yes\n  BatchMode yes\n"
            for node, port in lab.ssh_ports().items()
        )
    )
    return path


def suite_over_ssh(lab: Lab, config: Path) -> subprocess.CompletedProcess:
    """tests/infra through testinfra's ssh:// backend, the hosts of an ssh_config."""
    hosts = ",".join(f"ssh://{node}" for node in lab.settings.node_names)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(lab.settings.checkout("tests", "infra")), *VERDICT,
         f"--hosts={hosts}", f"--ssh-config={config}", "-p", "no:cacheprovider", "-q",
         "-rfE", f"--rootdir={lab.settings.checkout('tests', 'infra')}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def suite_over_ansible(lab: Lab, inventory: Path) -> subprocess.CompletedProcess:
    """tests/infra through the ansible:// backend and the inventory: `knight verify`."""
    return knight(lab, "verify", "--inventory", str(inventory), "--", *VERDICT)


def test_tests_infra_passes_a_uniform_fleet_over_ssh_and_ansible(
    ssh_lab: Lab, inventory: Path, tmp_path: Path
):
    ssh_lab.reset()
    for done in (
        suite_over_ssh(ssh_lab, ssh_config(ssh_lab, tmp_path / "ssh_config")),
        suite_over_ansible(ssh_lab, inventory),
    ):
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        # Every node was reached: the fleet test, and four release checks a node.
        assert f"{1 + 4 * len(ssh_lab.settings.node_names)} passed" in done.stdout


def test_tests_infra_fails_naming_the_node_an_unsafe_deploy_skipped_over_ssh_and_ansible(
    ssh_lab: Lab, inventory: Path, tmp_path: Path
):
    ssh_lab.reset()
    inv = ["--inventory", str(inventory)]
    try:
        done = knight(ssh_lab, "deploy", "8.0.0", "--skip", "smars-3", "--unsafe", *inv, "--json")
        assert json.loads(done.stdout)["skipped"] == ["smars-3"], done.stderr
        assert releases(ssh_lab, inventory)["smars-3"] == "7.1.0"
        for done in (
            suite_over_ssh(ssh_lab, ssh_config(ssh_lab, tmp_path / "ssh_config")),
            suite_over_ansible(ssh_lab, inventory),
        ):
            assert done.returncode == 1, done.stdout[-3000:]
            failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
            assert any("test_fleet.py" in line for line in failed), failed
            assert "smars-3" in done.stdout.split("fleet not uniform", 1)[1]
    finally:
        # The fleet put back on one release whatever the verdicts were.
        knight(ssh_lab, "rollback", *inv, check=True)
    assert releases(ssh_lab, inventory) == dict.fromkeys(ssh_lab.settings.node_names, "7.1.0")


# -- the Molecule scenario (molecule/default) on the ssh lab ------------------------------------
def test_molecule_converges_idempotently_and_verifies_on_the_ssh_lab(ssh_lab: Lab, inventory: Path):
    ssh_lab.reset()
    root = ssh_lab.settings.checkout()
    env = {
        **os.environ,
        "KNIGHT_LAB": ssh_lab.settings.lab,
        "KNIGHT_INVENTORY": str(inventory),
        "KNIGHT_RELEASE": "8.0.0",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    try:
        done = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "molecule"), "test"],
            cwd=root, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        for action in ("syntax", "converge", "idempotence", "verify"):
            assert re.search(rf"\b{action}\b[^\n]*Executed: Successful", out), action
        assert "Idempotence test failed" not in out
        assert re.search(r"actions=4\s+successful=4\s.*failed=0", out), out[-1000:]
        assert releases(ssh_lab, inventory) == dict.fromkeys(ssh_lab.settings.node_names, "8.0.0")
    finally:
        knight(ssh_lab, "rollback", "--inventory", str(inventory), check=True)


# -- experiments and faults through the inventory ------------------------------------------------
#: The knight process of an experiment through the inventory gets no Docker engine: were any
#: Docker call on its path, it would fail instead of quietly going through the engine.
NO_DOCKER = {"DOCKER_HOST": "tcp://127.0.0.1:9"}


def experiment(lab: Lab, inventory: Path, exp_id: str, mode: str, *sets: str) -> dict:
    env = {**os.environ, "KNIGHT_LAB": lab.settings.lab, **NO_DOCKER}
    args = ["experiment", "run", exp_id, "--mode", mode, "--inventory", str(inventory)]
    for item in ("node=smars-3", *sets):
        args += ["--set", item]
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args, "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr[-3000:]
    journal = json.loads(done.stdout)
    errors = [e["detail"] for e in journal["timeline"] if e["kind"] == "error"]
    assert not errors, errors
    assert done.returncode == (1 if journal["deviated"] else 0), done.stderr[-2000:]
    return journal


def test_skipped_node_through_the_inventory_deviates_unsafe_and_holds_guarded(
    ssh_lab: Lab, inventory: Path
):
    unsafe = experiment(ssh_lab, inventory, "skipped_node", "unsafe", "open_s=3")
    assert f"fleet {inventory}" in unsafe["timeline"][0]["detail"]
    outcome = unsafe["outcome"]
    assert (unsafe["status"], unsafe["deviated"]) == ("deviated", True)
    assert outcome["runaway_nodes"] == ["smars-3"]
    assert outcome["excess_shares"] > 0
    assert outcome["fleet_end"]["smars-3"] == "7.1.0"
    assert {r for n, r in outcome["fleet_end"].items() if n != "smars-3"} == {"8.0.0"}
    assert unsafe["expectations_met"] is True

    guarded = experiment(ssh_lab, inventory, "skipped_node", "guarded", "open_s=3")
    assert (guarded["status"], guarded["deviated"]) == ("completed", False)
    assert guarded["outcome"]["excess_shares"] == 0
    assert guarded["outcome"]["runaway_nodes"] == []
    refusals = [e["detail"] for e in guarded["timeline"] if e["kind"] == "guard"]
    # As over docker: the deploy that leaves smars-3 out is refused (the flags guard first: 8.0.0
    # reuses flag_7), and the launch never runs.
    assert refusals and " guard refused: copy 8.0.0 by hand" in refusals[0], refusals
    assert set(guarded["outcome"]["fleet_end"].values()) == {"7.1.0"}
    assert guarded["expectations_met"] is True


def test_a_kill_and_a_pause_over_ssh_are_done_and_undone_by_routerd(ssh_lab: Lab, inventory: Path):
    ssh_lab.reset()
    fleet = fleet_lab(inventory, ssh_lab.settings)
    admin = fleet.node_admin("smars-2", timeout=1.0)

    def answers() -> bool:
        try:
            return admin.request("GET", "/health", auth=False).status == 200
        except LabError:
            return False

    def eventually(check, what: str, timeout: float = 120.0) -> None:
        for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.2)):
            with attempt:
                assert check(), what

    before = admin.get("/version")["pid"]
    kill = make("kill", fleet, "smars-2")
    kill.inject()
    eventually(lambda: not answers(), "the router of smars-2 killed")
    # The node is held down, not gone: its container runs, sshd answers, the router does not.
    assert ssh_lab.engine.state(ssh_lab._container("smars-2")) == "running"
    assert ssh(ssh_lab, "smars-2", "pgrep -u smars -f -- '-m smars' || true").stdout == ""
    kill.undo()
    eventually(answers, "smars-2 started again")
    version = admin.get("/version")
    assert (version["release"], version["trading"]) == ("7.1.0", "active")
    assert version["pid"] != before

    pause = make("pause", fleet, "smars-2")
    pause.inject()
    eventually(lambda: not answers(), "the router of smars-2 frozen")
    assert halt_all(fleet)["pause"] == ["smars-2"]  # thawed first, as on Docker
    eventually(answers, "smars-2 thawed")
    assert admin.get("/version")["pid"] == version["pid"]  # the same process, thawed
