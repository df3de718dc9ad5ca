"""The ssh transport: per-lab keys kept private on the host, host keys pinned, and nodes that keep
no capability but the two they start with, on that transport only; Ansible checks host keys for
every inventory and reuses its connections."""

from __future__ import annotations

import configparser
import io
import stat
import tarfile
from pathlib import Path

from lab_fakes import tiny_artifact

from toolkit.guards.sets import GuardSet
from toolkit.lab.engine import EXEC_USER_LABEL, tar_of
from toolkit.lab.specs import SSH_CAPABILITIES, lab_specs, spec_digest
from toolkit.lab.ssh import SshKeys, known_hosts_line, node_ssh_files
from toolkit.lab.tokens import LabTokens
from toolkit.settings import Settings

ROOT = Path(__file__).resolve().parents[4]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_lab_keys_are_made_once_and_readable_by_their_owner_only(tmp_path):
    keys = SshKeys(tmp_path / "state" / "ssh")
    keys.ensure(["smars-1", "smars-2"])
    first = keys.deploy_key.read_bytes()
    assert first.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    for private in (keys.deploy_key, keys.host_key("smars-1"), keys.host_key("smars-2")):
        assert _mode(private) == 0o600, private
    assert _mode(keys.folder) == 0o700
    assert _mode(keys.folder.parent) == 0o700
    keys.ensure(["smars-1", "smars-2"])
    assert keys.deploy_key.read_bytes() == first
    assert keys.public(keys.host_key("smars-1")) != keys.public(keys.host_key("smars-2"))


def test_known_hosts_pins_each_node_at_its_published_port(tmp_path):
    keys = SshKeys(tmp_path / "ssh")
    keys.ensure(["smars-1", "smars-2"])
    text = keys.write_known_hosts({"smars-1": 40001, "smars-2": 40002}).read_text()
    kind, key = keys.public(keys.host_key("smars-2")).split()[:2]
    assert text.splitlines()[1] == f"[127.0.0.1]:40002 {kind} {key}"
    assert known_hosts_line("h.example", 22, "ssh-ed25519 AAAA c") == "h.example ssh-ed25519 AAAA"


def test_a_node_gets_its_host_key_for_the_deploy_user_alone_and_never_the_deploy_key(tmp_path):
    keys = SshKeys(tmp_path / "ssh")
    keys.ensure(["smars-1"])
    files = {f.path: f for f in node_ssh_files(keys, "smars-1", deploy_uid=10002)}
    host_key = files["ssh_host_ed25519_key"]
    assert (host_key.mode, host_key.uid) == (0o600, 10002)
    assert host_key.data == keys.host_key("smars-1").read_bytes()
    assert files["authorized_keys"].uid == 0
    assert files["authorized_keys"].data.decode().strip() == keys.public(keys.deploy_key)
    assert keys.deploy_key.read_bytes() not in b"".join(f.data for f in files.values())
    tar = tar_of(files.values(), uid=10001)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        owners = {m.name: m.uid for m in archive.getmembers()}
    assert owners == {"ssh_host_ed25519_key": 10002, "authorized_keys": 0}


def _specs(tmp_path: Path, ssh: bool) -> dict:
    settings = Settings(lab="t", nodes=2)
    files = None
    if ssh:
        keys = SshKeys(tmp_path / "ssh")
        keys.ensure(settings.node_names)
        files = {n: node_ssh_files(keys, n, settings.deploy_uid) for n in settings.node_names}
    made = lab_specs(
        settings,
        tiny_artifact(tmp_path),
        tokens=LabTokens("5" * 64),
        flags={},
        guards=GuardSet(),
        ssh=files,
    )
    return {s.hostname: s for s in made}


def test_only_nodes_of_the_ssh_transport_keep_a_capability_and_only_setuid_setgid(tmp_path):
    docker = _specs(tmp_path, ssh=False)
    ssh = _specs(tmp_path, ssh=True)
    assert all(s.cap_add == () for s in docker.values())
    assert SSH_CAPABILITIES == ("SETUID", "SETGID")
    node = ssh["smars-1"]
    assert node.cap_add == SSH_CAPABILITIES
    assert (node.user, node.command) == ("0:0", ["router-ssh"])
    assert node.labels[EXEC_USER_LABEL] == "10001:10001"
    assert node.ports == (7001, 8001, 2222)
    assert all(s.cap_add == () for name, s in ssh.items() if not name.startswith("smars"))
    assert spec_digest(node, "img") != spec_digest(docker["smars-1"], "img")


def test_the_ssh_lab_serves_dist_releases_read_only_as_its_artifact_store(tmp_path):
    assert _specs(tmp_path, ssh=False)["artifacts"].binds == ()
    binds = _specs(tmp_path, ssh=True)["artifacts"].binds
    assert binds == ((str(Settings().dist), "/srv/artifacts"),)


def test_every_node_keeps_its_admin_token_for_the_deploy_user_alone(tmp_path):
    for ssh in (False, True):
        node = _specs(tmp_path, ssh)["smars-2"]
        etc = dict(node.files)["/etc/smars"]
        token = next(f for f in etc if f.path == "admin.token")
        assert token.mode == 0o600
        assert token.data.decode().strip() == LabTokens("5" * 64).node("smars-2")


def test_ansible_checks_host_keys_first_and_keeps_its_ssh_connections():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "playbooks" / "ansible.cfg")
    assert cfg.getboolean("defaults", "host_key_checking") is True
    args = cfg.get("ssh_connection", "ssh_args").split()
    # ssh keeps the first value of an option: nothing after can turn the check off.
    assert args[:2] == ["-o", "StrictHostKeyChecking=yes"]
    assert "ControlPersist=120s" in args
    assert cfg.getboolean("ssh_connection", "pipelining") is True
    assert "control_path" not in cfg["ssh_connection"]


def test_sshd_lets_in_the_deploy_user_by_key_only():
    config = (ROOT / "router_image" / "sshd_config").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in config if line and not line.startswith("#"))
    assert settings["PasswordAuthentication"] == "no"
    assert settings["KbdInteractiveAuthentication"] == "no"
    assert settings["PermitRootLogin"] == "no"
    assert settings["AllowUsers"] == Settings().deploy_user
    assert settings["Port"] == str(Settings().ssh_port)
