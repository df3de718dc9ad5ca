"""A fleet an inventory declares, as the lab an experiment acts on: its nodes are the inventory's
hosts, its market is the inventory's, it has no Docker engine to call, a node's admin calls and
routerd's control words go over ssh as the inventory says, and an experiment with a step that
needs the Docker engine is refused (exit 2, naming the step) before anything runs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from toolkit import cli
from toolkit.chaos.kinds import make, over_inventory
from toolkit.chaostoolkit.export import export_experiment
from toolkit.deploy.fleet_lab import FleetLab, fleet_lab
from toolkit.deploy.remote import Remote
from toolkit.errors import ConfigError, LabError
from toolkit.experiments.context import INVENTORY_KEY, configuration_for
from toolkit.experiments.loader import load_experiment
from toolkit.guards.sets import GuardSet
from toolkit.lab import engine
from toolkit.settings import Settings

INVENTORY = """\
all:
  children:
    routers:
      hosts:
        edge-a:
          ansible_host: 127.0.0.1
          ansible_port: 40022
          smars_admin_url: http://edge-a:8001
          knight_admin_url: http://127.0.0.1:48001
        edge-b:
          ansible_host: 127.0.0.1
          ansible_port: 40023
          smars_admin_url: http://edge-b:8001
          knight_admin_url: http://127.0.0.1:48002
          knight_order_address: edge-b.orders:7101
      vars:
        ansible_connection: ssh
        ansible_user: smars-deploy
        ansible_ssh_private_key_file: /keys/deploy_ed25519
        ansible_ssh_common_args: -o UserKnownHostsFile=/keys/known_hosts -o StrictHostKeyChecking=yes
        artifact_base_url: http://artifacts:8080
        knight_venue_url: http://127.0.0.1:49100
        knight_venue_token_file: {token}
        knight_load_host: edge-b
"""

PARTITIONED = """\
title: a partition through an inventory
parameters: {node: edge-a}
steady_state: [{probe: nodes_healthy}]
method:
  - flag: {name: flag_7, value: off}
  - wait: {seconds: 1}
  - fault: {kind: partition, node: "{node}"}
rollbacks:
  - kill: {}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    token = tmp_path / "venue.token"
    token.write_text("the-venue-token\n")
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY.format(token=token))
    return path


@pytest.fixture
def no_docker(monkeypatch):
    """Any attempt to reach a Docker engine fails the test."""

    def reached(*_a, **_k):
        raise AssertionError("the Docker engine was reached")

    monkeypatch.setattr(engine.Engine, "__init__", reached)


def test_the_fleet_lab_is_the_inventorys_hosts_and_market(inventory, no_docker):
    lab = fleet_lab(inventory, Settings())
    assert lab.settings.node_names == ["edge-a", "edge-b"]
    assert lab.settings.lab.startswith("inventory-")
    assert lab.order_address("edge-a") == "edge-a:7001"
    assert lab.order_address("edge-b") == "edge-b.orders:7101"
    assert lab.venue_admin().base == "http://127.0.0.1:49100"
    assert lab.secrets == ["the-venue-token"]  # kept out of the journal
    assert lab.node_admin("edge-b").base == "http://127.0.0.1:48002"
    config = configuration_for(lab, GuardSet.for_mode("guarded"))
    assert config[INVENTORY_KEY] == str(inventory.resolve())


def test_the_fleet_lab_has_no_docker_engine_to_call(inventory, no_docker):
    lab = fleet_lab(inventory, Settings())
    with pytest.raises(LabError, match="knight uses no Docker engine there"):
        _ = lab.engine
    with pytest.raises(LabError, match="its owners bring it up"):
        lab.up()


def test_an_inventory_without_a_market_takes_no_experiment(tmp_path):
    path = tmp_path / "hosts.yml"
    text = INVENTORY.format(token="/x").split("        knight_venue_url")[0]
    path.write_text(text)
    with pytest.raises(ConfigError, match="no market for an experiment: set knight_venue_url"):
        fleet_lab(path, Settings())


def test_ssh_reaches_a_host_as_its_inventory_says(inventory, tmp_path):
    lab = fleet_lab(inventory, Settings())
    remote = Remote(lab.fleet.inventory.host("edge-a"), tmp_path / "ctl")
    line = remote.argv(["sh", "-c", "echo $1", "sh", "a b"])
    assert line[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert line[line.index("-p") : line.index("-p") + 2] == ["-p", "40022"]
    assert line[line.index("-i") : line.index("-i") + 2] == ["-i", "/keys/deploy_ed25519"]
    assert "UserKnownHostsFile=/keys/known_hosts" in line
    assert "StrictHostKeyChecking=yes" in line
    assert f"ControlPath={tmp_path / 'ctl'}/%C" in line
    # The command is one word for the login shell, each argument quoted.
    assert line[-3:] == ["smars-deploy@127.0.0.1", "--", "sh -c 'echo $1' sh 'a b'"]


def test_admin_calls_and_control_words_go_over_ssh(inventory, no_docker, monkeypatch):
    lab = fleet_lab(inventory, Settings())
    ran: list[tuple[str, list[str]]] = []

    def run(self, command, stdin=None, timeout=0):
        ran.append((self.host.name, command))
        return 0, json.dumps({"node": self.host.name, "killed": True}) + "\n"

    monkeypatch.setattr(Remote, "run", run)
    assert lab.node_admin("edge-a").post("/kill")["killed"] is True
    assert ran[-1] == ("edge-a", ["python3", "-", "kill"])
    lab.reload("edge-a", 96)  # the alerts' re-reads: one round trip, not 96
    assert ran[-1] == ("edge-a", ["python3", "-", "reload", "96"])
    lab.node_control("edge-b", "pause")
    assert ran[-1][1][-2:] == ["pause", "/run/smars/routerd.ctl"]
    with pytest.raises(LabError, match="'reboot' is not a word"):
        lab.node_control("edge-b", "reboot")


def test_faults_over_ssh_are_kill_stop_and_pause_and_the_others_are_refused(inventory, no_docker):
    assert over_inventory() == ["kill", "pause", "stop"]
    lab = fleet_lab(inventory, Settings())
    assert make("kill", lab, "edge-a").over_ssh
    with pytest.raises(ConfigError, match="fault partition: needs the Docker engine; not possible"):
        make("partition", lab, "edge-a")


def test_a_step_the_fleet_cannot_take_is_exit_2_naming_it_before_anything_runs(
    inventory, tmp_path, monkeypatch, no_docker
):
    def reached(*_a, **_k):
        raise AssertionError("the fleet was reached")

    monkeypatch.setattr(FleetLab, "exclusive", reached)
    monkeypatch.setattr(Remote, "run", reached)
    experiment = tmp_path / "partitioned.yml"
    experiment.write_text(PARTITIONED)
    result = CliRunner().invoke(
        cli.main, ["experiment", "run", str(experiment), "--inventory", str(inventory)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"knight: error: {experiment}:7: step 3 (fault partition): needs the Docker engine; "
        "not possible through an inventory (faults over ssh: kill, pause, stop)"
    ]


def test_an_export_names_the_inventory_and_refuses_what_it_cannot_take(inventory, tmp_path):
    exp = load_experiment("skipped_node", {"node": "edge-a"}, fleet=["edge-a", "edge-b"])
    doc = export_experiment(exp, "unsafe", inventory=inventory)
    assert doc["configuration"][INVENTORY_KEY] == str(inventory.resolve())
    assert INVENTORY_KEY not in export_experiment(exp, "unsafe")["configuration"]
    experiment = tmp_path / "partitioned.yml"
    experiment.write_text(PARTITIONED)
    partitioned = load_experiment(experiment, {}, fleet=["edge-a", "edge-b"])
    with pytest.raises(ConfigError, match=r"step 3 \(fault partition\)"):
        export_experiment(partitioned, "unsafe", inventory=inventory)


def test_a_reset_is_one_baseline_call_per_node_and_a_new_venue_run(
    inventory, no_docker, monkeypatch
):
    lab = fleet_lab(inventory, Settings())
    calls: list[tuple[str, tuple[str, ...], float]] = []
    venue_posts: list[str] = []
    artifact = SimpleNamespace(
        version="7.1.0", tree="ab" * 32, manifest={"artifact_sha256": "cd" * 32}
    )
    monkeypatch.setattr(lab.fleet, "publish", lambda v: (artifact, f"http://artifacts:8080/{v}/x"))
    monkeypatch.setattr(
        FleetLab,
        "smarsctl",
        lambda self, node, *args, timeout=0: calls.append((node, args, timeout)) or {},
    )
    monkeypatch.setattr(
        FleetLab,
        "venue_admin",
        lambda self, timeout=5.0: SimpleNamespace(post=lambda path, body: venue_posts.append(path)),
    )
    lab.reset(GuardSet.for_mode("unsafe"))
    assert sorted(node for node, _, _ in calls) == ["edge-a", "edge-b"]
    _, args, timeout = calls[0]
    command, version, tree, sha, url, _epoch, guards, flags, switch_s = args
    assert command == "baseline"
    assert (version, tree, sha) == ("7.1.0", "ab" * 32, "cd" * 32)
    assert url == "http://artifacts:8080/7.1.0/x"
    assert json.loads(guards) == GuardSet.for_mode("unsafe").router_file()
    assert json.loads(flags) == {"flag_7": {"value": False, "meaning": "power_peg"}}
    assert int(switch_s) >= 60 and timeout > int(switch_s)  # a busy machine's switch fits
    assert venue_posts == ["/reset"]
