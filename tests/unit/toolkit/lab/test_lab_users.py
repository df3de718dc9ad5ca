"""The node's two users, as the image makes them and the toolkit uses them: the router's, which
every container runs as, and the deploy user's, which owns the releases and the settings, which
the lab writes files as and Ansible connects as."""

from __future__ import annotations

import re

import yaml

from toolkit.deploy.inventory import FLEET_GROUP, lab_inventory, render
from toolkit.settings import Settings

ROOT = Settings().root


def passwd_lines() -> dict[str, tuple[int, int]]:
    """name -> (uid, gid) of the users the Dockerfile writes into /etc/passwd."""
    text = (ROOT / "router_image" / "Dockerfile").read_text()
    found = re.findall(r"echo '([a-z-]+):x:(\d+):(\d+):[^']*' >> /etc/passwd", text)
    return {name: (int(uid), int(gid)) for name, uid, gid in found}


def test_the_image_makes_the_users_the_toolkit_knows():
    s = Settings()
    assert passwd_lines() == {"smars": (s.uid, s.uid), s.deploy_user: (s.deploy_uid, s.deploy_uid)}
    assert s.uid != s.deploy_uid


def test_the_image_gives_the_releases_and_settings_to_the_deploy_user():
    text = (ROOT / "router_image" / "Dockerfile").read_text()
    assert "chown 10002:10002 /opt/smars/releases /etc/smars /srv/artifacts" in text
    assert "chmod 0755 /opt/smars/releases /etc/smars /srv/artifacts" in text
    assert "USER 10001:10001" in text


def test_ansible_connects_as_the_deploy_user():
    s = Settings(lab="t", nodes=3)
    fleet = lab_inventory(s)["all"]["children"][FLEET_GROUP]
    assert fleet["vars"]["ansible_user"] == s.deploy_user
    assert fleet["vars"]["ansible_connection"] == "community.docker.docker"


def test_the_written_out_lab_inventory_is_the_rendered_one():
    written = (ROOT / "playbooks" / "inventories" / "lab" / "hosts.yml").read_text()
    assert written == render(Settings())


def test_the_staging_example_connects_as_a_deploy_user_too():
    path = ROOT / "playbooks" / "inventories" / "staging.example" / "hosts.yml"
    fleet = yaml.safe_load(path.read_text())["all"]["children"][FLEET_GROUP]
    assert fleet["vars"]["ansible_user"] == Settings().deploy_user
