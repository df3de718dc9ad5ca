"""Hostile input: nothing a user types reaches a shell. Every value bound for a playbook is
checked where it enters (the CLI and the toolkit's API), a bad one is exit 2 with one line before
the lab or Ansible is reached, and every playbook quotes what it pastes into a shell command."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from toolkit import cli
from toolkit.deploy import operations
from toolkit.errors import ConfigError

PLAYBOOKS = Path(__file__).resolve().parents[4] / "playbooks"
HOSTILE = "$(touch /tmp/pwned)"


@pytest.fixture
def no_lab(monkeypatch):
    """Reaching the lab or Ansible at all fails the test: a bad value must be refused first.
    (The lab name is one no engine has, should anything get past both.)"""
    monkeypatch.setenv("KNIGHT_LAB", "knight-no-such-lab")

    def reached(*_args, **_kwargs):
        raise AssertionError("the lab or Ansible was reached")

    monkeypatch.setattr(cli, "_lab", reached)
    monkeypatch.setattr(operations, "run_playbook", reached)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["flags", "set", "flag_7", "on", "--meaning", HOSTILE], "flag meaning"),
        (["flags", "set", "flag_7", "on", "--meaning", "rlp\ntouch /tmp/pwned"], "flag meaning"),
        (
            ["flags", "set", "flag_7", "on", "--meaning", "{{ lookup('pipe', 'id') }}"],
            "flag meaning",
        ),
        (["flags", "set", HOSTILE, "on", "--meaning", "rlp"], "flag name"),
        (["flags", "set", "flag_7;id", "off"], "flag name"),
        (["deploy", HOSTILE], "release"),
        (["deploy", "8.0.0 --tags x"], "release"),
        (["deploy", "8.0.0", "--skip", "smars-1,!smars-2"], "node"),
        (["deploy", "8.0.0", "--skip", HOSTILE], "node"),
        (["rollback", "--to", HOSTILE], "release"),
        (["verify", "--release", HOSTILE], "release"),
        (["load", "--node", HOSTILE], "node"),
        (["release", "build", HOSTILE], "release"),
        (["flags", "lint", "--release", HOSTILE], "release"),
    ],
)
def test_a_hostile_value_is_exit_2_in_one_line_before_anything_runs(no_lab, args, what):
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"knight: error: {what} ")
    assert "Traceback" not in result.output


class _NoLab:
    """A lab that fails the test when touched: the API refuses a bad value before using it."""

    def __getattr__(self, name):
        raise AssertionError(f"the lab was reached (lab.{name})")


@pytest.mark.parametrize(
    "call",
    [
        lambda lab: operations.deploy(lab, HOSTILE),
        lambda lab: operations.deploy(lab, "8.0.0", skip=[HOSTILE]),
        lambda lab: operations.rollback(lab, to=HOSTILE),
        lambda lab: operations.rollback(lab, to="7.1.0", skip=["smars-1 smars-2"]),
        lambda lab: operations.flag(lab, HOSTILE, True, "rlp"),
        lambda lab: operations.flag(lab, "flag_7", True, HOSTILE),
        lambda lab: operations.flag(lab, "flag_7", False, "rlp'; id; '"),
    ],
)
def test_the_api_refuses_a_hostile_value_before_touching_the_lab(no_lab, call):
    with pytest.raises(ConfigError) as info:
        call(_NoLab())
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


GOOD_VARS = {
    "fleet_group": "routers",
    "knight_release": "8.0.0",
    "knight_tree": "a" * 64,
    "knight_artifact_sha256": "0123456789abcdef" * 4,
    "knight_artifact_url": "http://artifacts:8080/8.0.0/smars-8.0.0.tar.gz",
    "knight_fence_epoch": 1_700_000_000_000,
    "knight_flag": "flag_7",
    "knight_flag_value": "on",
    "knight_flag_meaning": "rlp",
    "knight_action": "resume-trading",
}


def test_good_playbook_variables_pass_as_they_are():
    assert operations.check_playbook_vars(GOOD_VARS) == GOOD_VARS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("knight_tree", "A" * 64, "tree hash 'AAAA"),
        ("knight_artifact_sha256", "0" * 63, "artifact SHA-256 '000"),
        ("knight_artifact_url", "http://artifacts:8080/$(id)", "artifact URL 'http://artifacts"),
        ("knight_artifact_url", "file:///etc/passwd", "artifact URL"),
        ("knight_fence_epoch", True, "fence epoch True"),
        ("knight_fence_epoch", -1, "fence epoch -1"),
        ("knight_fence_epoch", "1; id", "fence epoch '1; id'"),
        ("knight_flag_value", "yes", "flag value 'yes'"),
        ("knight_action", "kill; id", "kill-switch action"),
        ("fleet_group", "all:!smars-1", "inventory group"),
        ("knight_extra", "x", "no rule for playbook variable 'knight_extra'"),
    ],
)
def test_a_playbook_variable_that_breaks_its_rule_is_refused(name, value, message):
    with pytest.raises(ConfigError) as info:
        operations.check_playbook_vars({**GOOD_VARS, name: value})
    assert message in str(info.value)


def test_a_long_hostile_value_is_shown_cut_short_on_one_line():
    with pytest.raises(ConfigError) as info:
        operations.check_flag_name("x" * 500 + "\n$(id)")
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


# -- the playbooks -----------------------------------------------------------------------------
def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _shell_commands():
    """(playbook, task name, command text) of every task that runs a shell command."""
    modules = ("ansible.builtin.raw", "raw", "ansible.builtin.shell", "shell")
    for path in sorted(PLAYBOOKS.glob("*.yml")):
        for play in yaml.safe_load(path.read_text()):
            for task in _tasks(play.get("tasks")):
                for module in modules:
                    if module in task:
                        command = task[module]
                        yield (
                            path.name,
                            task["name"],
                            command.get("cmd", command) if isinstance(command, dict) else command,
                        )


def test_every_playbook_runs_shell_commands():
    assert {p for p, _, _ in _shell_commands()} >= {
        "deploy.yml",
        "fence.yml",
        "flags.yml",
        "killswitch.yml",
        "manual_deploy.yml",
        "minimal_deploy.yml",
    }


@pytest.mark.parametrize(("playbook", "task", "command"), list(_shell_commands()))
def test_every_value_pasted_into_a_shell_command_is_quoted(playbook, task, command):
    # The node agent's source is the body of a here-document whose delimiter is quoted, so the
    # shell expands nothing in it; everything else on the line goes through `| quote`.
    assert "<<'SMARSCTL'" in command
    line = command.split("<<'SMARSCTL'")[0]
    body = command.split("<<'SMARSCTL'", 1)[1]
    assert re.findall(r"\{\{(.*?)\}\}", body) == [" smarsctl "]
    unquoted = [
        e.strip() for e in re.findall(r"\{\{(.*?)\}\}", line) if not re.search(r"\|\s*quote\s*$", e)
    ]
    assert unquoted == [], f"{playbook}: {task}"
    assert "{%" not in command


def test_ansible_cfg_leaves_ssh_host_key_checking_on():
    cfg = configparser.ConfigParser()
    cfg.read(PLAYBOOKS / "ansible.cfg")
    for section in cfg.sections():
        if cfg.has_option(section, "host_key_checking"):
            assert cfg.getboolean(section, "host_key_checking"), section


@pytest.mark.parametrize(
    "args",
    [
        ["load", "--duration", "nan"],
        ["load", "--rate", "nan"],
        ["load", "--rate", "inf"],
        ["load", "--rlp-share", "NaN"],
        ["monitor", "--duration", "nan"],
    ],
)
def test_a_number_that_is_not_finite_is_a_bad_option_value(no_lab, args):
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "is not a finite number" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["monitor", "--via", "nagios"],
        ["experiment", "run", "rollback", "--monitor", "nagios"],
    ],
)
def test_a_monitor_path_that_does_not_exist_is_a_bad_option_value(no_lab, args):
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "'nagios' is not one of 'builtin', 'prometheus', 'both'" in result.stderr
