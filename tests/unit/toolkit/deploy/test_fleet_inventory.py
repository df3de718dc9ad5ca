"""An inventory is an input: knight reads the fleet from it, checked whole before anything runs.
A missing host or variable, or a value outside its pattern, is one line naming the file, the
line and the host, and exit 2; the ssh lab's inventory has the shape of staging.example."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from toolkit import cli
from toolkit.deploy import operations
from toolkit.deploy.fleet import Fleet, load_inventory
from toolkit.deploy.inventory import FLEET_GROUP, ssh_lab_inventory
from toolkit.errors import ConfigError
from toolkit.lab.ssh import SshKeys
from toolkit.settings import Settings

ROOT = Path(__file__).resolve().parents[4]
STAGING = ROOT / "playbooks" / "inventories" / "staging.example" / "hosts.yml"

GOOD = """\
all:
  children:
    routers:
      hosts:
        smars-1:
          ansible_host: 10.1.0.1
          smars_admin_url: http://10.1.0.1:8001
        smars-2:
          ansible_host: 10.1.0.2
          smars_admin_url: http://10.1.0.2:8001
          knight_admin_url: http://127.0.0.1:18002
      vars:
        ansible_connection: ssh
        ansible_user: smars-deploy
        artifact_base_url: http://store.example:8080/smars/
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    return path


def _fake_ssh_lab(tmp_path: Path) -> SimpleNamespace:
    settings = Settings(root=tmp_path, lab="t", nodes=3)
    ports = {n: 40000 + i for i, n in enumerate(settings.node_names)}
    return SimpleNamespace(
        settings=settings,
        ssh_ports=lambda: ports,
        ssh_keys=SshKeys(tmp_path / "ssh"),
        node_admin=lambda node: SimpleNamespace(port=41000 + int(node.split("-")[1])),
        venue_admin=lambda: SimpleNamespace(port=49100),
        tokens=SimpleNamespace(venue="venue-secret"),
    )


def _shape(doc: dict) -> tuple[set[str], set[str], set[str]]:
    """(groups, host variables, group variables) of an inventory."""
    groups = set(doc["all"]["children"])
    fleet = doc["all"]["children"][FLEET_GROUP]
    host_vars = {k for entry in fleet["hosts"].values() for k in entry}
    return groups, host_vars, set(fleet["vars"])


def test_the_ssh_lab_inventory_has_the_groups_and_variables_of_staging_example(tmp_path):
    lab_doc = ssh_lab_inventory(_fake_ssh_lab(tmp_path))
    staging = yaml.safe_load(STAGING.read_text())
    assert _shape(lab_doc) == _shape(staging)
    assert _shape(lab_doc)[1] == {
        "ansible_host",
        "ansible_port",
        "smars_admin_url",
        "knight_admin_url",
    }


def test_the_ssh_lab_inventory_pins_host_keys_and_reaches_nodes_on_loopback(tmp_path):
    lab = _fake_ssh_lab(tmp_path)
    fleet = ssh_lab_inventory(lab)["all"]["children"][FLEET_GROUP]
    assert {h["ansible_host"] for h in fleet["hosts"].values()} == {"127.0.0.1"}
    assert fleet["hosts"]["smars-2"]["ansible_port"] == 40001
    assert fleet["hosts"]["smars-2"]["smars_admin_url"] == "http://smars-2:8001"
    assert fleet["hosts"]["smars-2"]["knight_admin_url"] == "http://127.0.0.1:41002"
    args = fleet["vars"]["ansible_ssh_common_args"]
    assert f"UserKnownHostsFile={tmp_path / 'ssh' / 'known_hosts'}" in args
    assert "StrictHostKeyChecking=yes" in args
    assert fleet["vars"]["ansible_ssh_private_key_file"] == str(tmp_path / "ssh" / "deploy_ed25519")


def test_both_shipped_inventories_pass_the_check():
    staging = load_inventory(STAGING.parent)
    assert staging.node_names == [f"smars-{i}" for i in range(1, 9)]
    assert staging.artifact_base_url == "https://artifacts.staging.example/smars"
    lab = load_inventory(ROOT / "playbooks" / "inventories" / "lab" / "hosts.yml")
    # No knight_admin_url: knight reads the admin API where the peers do.
    assert lab.hosts[0].admin_url == "http://smars-1:8001"


def test_a_good_inventory_gives_each_node_the_admin_url_knight_uses(tmp_path):
    inventory = load_inventory(_write(tmp_path, GOOD))
    assert [h.admin_url for h in inventory.hosts] == [
        "http://10.1.0.1:8001",
        "http://127.0.0.1:18002",
    ]
    assert inventory.artifact_base_url == "http://store.example:8080/smars"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("          smars_admin_url: http://10.1.0.1:8001\n", ""), "smars-1: no smars_admin_url"),
        (("        ansible_user: smars-deploy\n", ""), "smars-1: no ansible_user"),
        (("        artifact_base_url: http://store.example:8080/smars/\n", ""), "no artifact_base"),
        (("    routers:", "    others:"), "no hosts in group 'routers'"),
        (("ansible_host: 10.1.0.2", "ansible_host: '10.1.0.2 -oProxyCommand=id'"), "ansible_host"),
        (("http://10.1.0.1:8001", "http://10.1.0.1:8001/$(id)"), "smars_admin_url"),
        (("ansible_connection: ssh", "ansible_connection: local"), "ansible_connection"),
        (("        smars-2:", "        'smars-2,!x':"), "host name"),
        (
            (
                "ansible_connection: ssh\n",
                "ansible_connection: ssh\n        ansible_ssh_args: -v\n",
            ),
            "variable 'ansible_ssh_args' is not one knight knows",
        ),
    ],
)
def test_a_wrong_inventory_is_one_line_naming_file_line_and_host(tmp_path, edit, says):
    path = _write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert says in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_ssh_options_that_could_run_a_command_are_refused(tmp_path):
    text = GOOD + "        ansible_ssh_common_args: -o ProxyCommand=sh -c id\n"
    with pytest.raises(ConfigError, match="ansible_ssh_common_args"):
        load_inventory(_write(tmp_path, text))


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "8.0.0"],
        ["rollback"],
        ["flags", "set", "flag_7", "off"],
        ["kill"],
        ["resume"],
        ["verify"],
        ["lab", "status"],
        ["lab", "halt-all"],
        ["experiment", "run", "skipped_node"],
        ["experiment", "export", "skipped_node", "--to", "chaostoolkit"],
        ["faults", "--count", "1"],
    ],
)
def test_every_fleet_command_refuses_a_bad_inventory_before_anything_runs(
    tmp_path, monkeypatch, args
):
    def reached(*_args, **_kwargs):
        raise AssertionError("the lab or Ansible was reached")

    monkeypatch.setattr(cli, "_lab", reached)
    monkeypatch.setattr(operations, "run_playbook", reached)
    path = _write(tmp_path, GOOD.replace("          smars_admin_url: http://10.1.0.2:8001\n", ""))
    result = CliRunner().invoke(cli.main, [*args, "--inventory", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"knight: error: {path}:8: smars-2: no smars_admin_url (the node's admin "
        "API, for its peers)"
    ], result.stderr


def test_knight_inventory_in_the_environment_is_the_same_input(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_lab", lambda *a: pytest.fail("the lab was reached"))
    monkeypatch.setenv("KNIGHT_INVENTORY", str(tmp_path / "missing.yml"))
    result = CliRunner().invoke(cli.main, ["kill"])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"knight: error: {tmp_path / 'missing.yml'}: inventory not found"
    )


def test_a_skipped_node_must_be_a_host_of_the_inventory(tmp_path, monkeypatch):
    fleet = Fleet.from_inventory(_write(tmp_path, GOOD), Settings())
    monkeypatch.setattr(operations, "run_playbook", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ConfigError, match="smars-9: not a host of group routers"):
        operations.deploy(fleet, "8.0.0", skip=["smars-9"])


def test_ssh_connections_are_kept_apart_by_the_host_keys_they_were_opened_under(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    known = tmp_path / "known_hosts"
    known.write_text("[127.0.0.1]:40000 ssh-ed25519 AAAAone\n")
    text = GOOD + f"        ansible_ssh_common_args: -o UserKnownHostsFile={known}\n"
    fleet = Fleet.from_inventory(_write(tmp_path, text), Settings())
    first = fleet.ansible_env()
    assert first["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert fleet.ansible_env() == first
    known.write_text("[127.0.0.1]:40000 ssh-ed25519 AAAAtwo\n")
    second = fleet.ansible_env()["ANSIBLE_SSH_CONTROL_PATH_DIR"]
    assert second != first["ANSIBLE_SSH_CONTROL_PATH_DIR"]
    # Short: a socket's path is at most about 100 bytes, and %C adds 40.
    assert len(second) + 41 < 100
    assert oct(Path(second).stat().st_mode & 0o777) == "0o700"


MARKET = """\
        knight_venue_url: http://127.0.0.1:19100
        knight_venue_token_file: /srv/knight/venue.token
        knight_load_host: smars-2
"""


def test_the_market_an_experiment_needs_comes_from_the_inventory(tmp_path):
    inventory = load_inventory(_write(tmp_path, GOOD + MARKET))
    assert inventory.market is not None
    assert inventory.market.venue_url == "http://127.0.0.1:19100"
    assert inventory.market.venue_token_file == Path("/srv/knight/venue.token")
    assert inventory.market.load_host == "smars-2"
    assert load_inventory(_write(tmp_path, GOOD)).market is None  # a fleet to deploy to only


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (("knight_load_host: smars-2", "knight_load_host: smars-9"), "'smars-9' is not a host"),
        (("        knight_load_host: smars-2\n", ""), "no knight_load_host"),
        (("19100", "19100/$(id)"), "knight_venue_url"),
        (("knight_load_host: smars-2", "knight_load_host: 'a b'"), "knight_load_host"),
    ],
)
def test_a_half_declared_or_wrong_market_is_one_line(tmp_path, edit, says):
    path = _write(tmp_path, (GOOD + MARKET).replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:") and says in str(info.value)
    assert "\n" not in str(info.value)


def test_the_ssh_lab_inventory_names_its_market_and_keeps_the_venue_token_private(tmp_path):
    fleet = ssh_lab_inventory(_fake_ssh_lab(tmp_path))["all"]["children"][FLEET_GROUP]
    assert fleet["vars"]["knight_venue_url"] == "http://127.0.0.1:49100"
    assert fleet["vars"]["knight_load_host"] == "smars-1"
    token = Path(fleet["vars"]["knight_venue_token_file"])
    assert token.read_text() == "venue-secret\n"
    assert token.stat().st_mode & 0o777 == 0o600
