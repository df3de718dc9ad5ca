"""The CLI: errors a user can cause end in one line and a non-zero exit, never a traceback."""

import json
import subprocess
import sys

import pytest


def knight(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_unknown_release_is_one_line_and_exit_1():
    done = knight("release", "build", "9.9.9")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "knight: error: unknown release '9.9.9' (known: 7.1.0, 8.0.0, 8.0.1)"
    ]
    assert "Traceback" not in done.stderr


def test_release_build_json_lists_each_artifact(tmp_path):
    done = knight("release", "build", "7.1.0", "8.0.0", "--json")
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert [a["version"] for a in built] == ["7.1.0", "8.0.0"]
    assert built[0]["flags"] == {"flag_7": "power_peg"}
    assert built[1]["flags"] == {"flag_7": "rlp"}
    assert all(len(a["tree"]) == 64 for a in built)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KNIGHT_LAB": "Bad Name"}, "KNIGHT_LAB='Bad Name'"),
        ({"KNIGHT_NODES": "eight"}, "KNIGHT_NODES='eight' is not an integer"),
        ({"KNIGHT_NODES": "0"}, "KNIGHT_NODES=0 is out of range"),
    ],
)
def test_bad_environment_is_a_clear_error(env, message):
    import os

    done = knight("lab", "status", env={**os.environ, **env})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_docker_is_a_clear_error():
    import os

    done = knight("lab", "status", env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert done.returncode == 1
    assert done.stderr.startswith("knight: error: cannot reach the Docker engine")
    assert "Traceback" not in done.stderr


def test_help_lists_the_command_groups():
    done = knight("--help")
    assert done.returncode == 0
    for command in ("image", "release", "lab", "load", "bench"):
        assert command in done.stdout
