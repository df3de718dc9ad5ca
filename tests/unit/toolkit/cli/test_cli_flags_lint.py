"""`knight flags lint`: exit 0 when the release is clean, 1 when lint finds a problem, 2 with one
line for a malformed registry; `--json` prints the report."""

from __future__ import annotations

import json

from click.testing import CliRunner

from toolkit.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["flags", "lint", *args])


def test_default_lints_the_newest_release_and_passes():
    result = run()
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "flags.yaml: 2 flags, release 8.0.1: ok"


def test_8_0_0_fails_with_a_table_naming_the_reused_flag():
    result = run("--release", "8.0.0")
    assert result.exit_code == 1
    assert "flag_7" in result.stdout
    assert "reused" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "flags.yaml: 2 flags, release 8.0.0: 1 problem"


def test_json_reports_the_problems():
    result = run("--release", "8.0.0", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["release"] == "8.0.0"
    assert [(p["flag"], p["release"], p["rule"]) for p in doc["problems"]] == [
        ("flag_7", "8.0.0", "reused")
    ]


def test_json_for_a_clean_release_is_ok():
    result = run("--release", "8.0.1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) | {"registry": None} == {
        "registry": None,
        "release": "8.0.1",
        "flags": 2,
        "ok": True,
        "problems": [],
    }


def test_a_malformed_registry_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "flags.yaml"
    path.write_text("flags:\n  flag_7:\n    meaning: power_peg\n    colour: red\n")
    result = run("--registry", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"knight: error: {path}:4: flag flag_7: unknown key 'colour'"
    ]


def test_an_unknown_release_is_one_line_and_exit_1():
    result = run("--release", "9.9.9")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "knight: error: unknown release '9.9.9' (known: 7.1.0, 8.0.0, 8.0.1)"
    )
