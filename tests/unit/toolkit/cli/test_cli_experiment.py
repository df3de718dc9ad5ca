"""`knight experiment`: list shows every file, a malformed file is exit 2 with one clear line
(file and line, no traceback) before anything touches the lab; a bad --set or mode likewise."""

from __future__ import annotations

import json

from click.testing import CliRunner

from toolkit.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["experiment", *args])


def test_list_names_every_shipped_experiment():
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    ids = [e["id"] for e in json.loads(result.stdout)]
    assert ids == ["knightmare", "reused_flag", "rollback", "skipped_node"]


def test_a_malformed_experiment_file_is_exit_2_and_one_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("title: broken\nmethod:\n  - deploy: {release: 9.9.9}\n")
    result = run("run", str(bad), "--mode", "unsafe")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert f"{bad}:3:" in lines[0] and "9.9.9" in lines[0]
    assert "Traceback" not in result.output


def test_invalid_yaml_is_exit_2_with_its_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("title: broken\nmethod: [\n")
    result = run("run", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:" in result.output and "invalid YAML" in result.output


def test_an_unknown_parameter_is_exit_2():
    result = run("run", "skipped_node", "--set", "nod=smars-3")
    assert result.exit_code == 2
    assert "--set nod: no such parameter" in result.output and "Traceback" not in result.output


def test_an_unknown_guard_is_exit_2():
    result = run("run", "skipped_node", "--guards", "atomic,armour")
    assert result.exit_code == 2
    assert "armour" in result.output
