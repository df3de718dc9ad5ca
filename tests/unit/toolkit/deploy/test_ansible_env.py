"""Each playbook run gets the environment and variables it is given, not those of an earlier run
in the same folder (ansible-runner keeps the first run's in env/ and lets them win): a run for
one fleet must never use the ssh connections, nor the variables, of another."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.deploy.ansible import run_playbook
from toolkit.settings import Settings

PLAYBOOK = """\
- name: Probe what the run was given
  hosts: all
  gather_facts: false
  tasks:
    - name: "probe: the environment and the variables"
      ansible.builtin.raw: >-
        echo '{"env": "{{ lookup('ansible.builtin.env', 'KNIGHT_PROBE') }}",
        "var": "{{ knight_release | default('none') }}"}'
"""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    root = tmp_path / "checkout"
    (root / "playbooks").mkdir(parents=True)
    (root / "playbooks" / "probe.yml").write_text(PLAYBOOK)
    (root / "playbooks" / "ansible.cfg").write_text("[defaults]\ngathering = explicit\n")
    monkeypatch.setenv("KNIGHT_REPORTS", str(tmp_path / "reports"))
    return Settings(root=root)


def _probe(settings: Settings, inventory: Path, env: str, release: str | None) -> dict:
    extravars = {"knight_release": release} if release else {}
    run = run_playbook(
        settings, "probe.yml", extravars, inventory=inventory, envvars={"KNIGHT_PROBE": env}
    )
    assert run.rc == 0, run.failures
    return run.outputs["probe"]["localhost"]


def test_a_second_run_sees_its_own_environment_and_variables(settings: Settings, tmp_path: Path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    assert _probe(settings, inventory, "first", "7.1.0") == {"env": "first", "var": "7.1.0"}
    assert _probe(settings, inventory, "second", None) == {"env": "second", "var": "none"}
