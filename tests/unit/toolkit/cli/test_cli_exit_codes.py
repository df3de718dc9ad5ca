"""Exit codes a script relies on: `experiment matrix` is 1 when a cell misses its file's
expectations, `verify` is pytest's own code, `bench --check` is 1 when a figure misses its goal.
The lab is never reached: the toolkit calls the commands make are replaced by their results."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from toolkit import cli
from toolkit.deploy import verify as verify_module
from toolkit.experiments import matrix as matrix_module
from toolkit.experiments.journal import Journal
from toolkit.experiments.matrix import Matrix
from toolkit.report import bench as bench_module


@pytest.fixture(autouse=True)
def no_lab(monkeypatch):
    monkeypatch.setenv("KNIGHT_LAB", "knight-no-such-lab")
    monkeypatch.setattr(cli, "_lab", lambda: object())


# -- experiment matrix -------------------------------------------------------------------------
COLUMNS = ["none", "atomic", "all"]


def _journal(tmp_path, exp: str, column: str, met: bool | None) -> str:
    mode = "unsafe" if column == "none" else "guarded"
    journal = Journal(exp, mode)
    expectations = [] if met is None else [{"name": "deviated", "expected": True, "met": met}]
    journal.finish("completed", False, expectations)
    return str(journal.write(tmp_path / f"{exp}-{column}.json"))


def _matrix(monkeypatch, tmp_path, met: dict[tuple[str, str], bool | None]) -> None:
    """run_matrix answers a matrix whose journals met (or missed) their expectations."""
    matrix = Matrix(COLUMNS)
    for (exp, column), ok in met.items():
        matrix.cells.setdefault(exp, {})[column] = 0
        matrix.runaway.setdefault(exp, {})[column] = []
        matrix.journals.setdefault(exp, {})[column] = _journal(tmp_path, exp, column, ok)
    monkeypatch.setattr(
        matrix_module, "run_matrix", lambda lab, ids, say=None, observe=None: matrix
    )


def test_matrix_exits_0_when_every_judged_cell_met_its_expectations(monkeypatch, tmp_path):
    # A single-guard cell has no expectation (None): it is measured, not judged.
    _matrix(
        monkeypatch,
        tmp_path,
        {("rollback", "none"): True, ("rollback", "atomic"): None, ("rollback", "all"): True},
    )
    result = CliRunner().invoke(cli.main, ["experiment", "matrix", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["expectations_met"] == {"rollback": {"none": True, "atomic": None, "all": True}}


def test_matrix_exits_1_and_names_the_cell_that_missed(monkeypatch, tmp_path):
    _matrix(
        monkeypatch,
        tmp_path,
        {
            ("rollback", "none"): True,
            ("rollback", "atomic"): None,
            ("rollback", "all"): False,
            ("skipped_node", "none"): True,
        },
    )
    result = CliRunner().invoke(cli.main, ["experiment", "matrix"])
    assert result.exit_code == 1, result.output
    assert "expectations NOT met: rollback with all" in result.stdout
    as_json = CliRunner().invoke(cli.main, ["experiment", "matrix", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["expectations_met"]["rollback"]["all"] is False


# -- verify ------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0, 1, 2, 4, 5])
def test_verify_exits_with_pytests_own_code(monkeypatch, code):
    def fake(lab, release=None, extra=None):
        return verify_module.VerifyResult(code == 0, code, ["pytest"])

    monkeypatch.setattr(verify_module, "verify", fake)
    result = CliRunner().invoke(cli.main, ["verify"])
    assert result.exit_code == code


# -- bench --check -----------------------------------------------------------------------------
FIGURES = {
    "lab_up_s": {"value": 9.5, "goal": "<= 15"},
    "fleet_scaling": {"value": 1.4, "goal": ">= 1.25"},
    "interleaved_orders": {"value": 0, "goal": "== 0"},
    "load_window": {"value": 4096, "goal": ""},
}


def _bench(monkeypatch, figures):
    monkeypatch.setattr(
        bench_module, "run_bench", lambda lab, path, progress=None, parts=(): figures
    )


def test_bench_check_exits_0_when_every_goal_is_met(monkeypatch, tmp_path):
    _bench(monkeypatch, FIGURES)
    result = CliRunner().invoke(cli.main, ["bench", "--check", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    assert "every goal met" in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("lab_up_s", 15.5, "lab_up_s 15.5 (goal <= 15)"),
        ("fleet_scaling", 1.2, "fleet_scaling 1.2 (goal >= 1.25)"),
        ("interleaved_orders", 3, "interleaved_orders 3 (goal == 0)"),
        ("lab_up_s", None, "lab_up_s None (goal <= 15)"),
    ],
)
def test_bench_check_exits_1_naming_the_missed_goal(monkeypatch, tmp_path, name, value, shown):
    _bench(monkeypatch, {**FIGURES, name: {"value": value, "goal": FIGURES[name]["goal"]}})
    path = str(tmp_path / "b.json")
    result = CliRunner().invoke(cli.main, ["bench", "--check", "--json", path])
    assert result.exit_code == 1, result.output
    assert f"goal missed: {shown}" in result.stdout
    # Without --check the figures are reported, not judged.
    assert CliRunner().invoke(cli.main, ["bench", "--json", path]).exit_code == 0


@pytest.mark.parametrize(
    ("value", "goal", "met"),
    [
        (0.25, ">= 0.25", True),
        (0.2499, ">= 0.25", False),
        (10, "<= 10", True),
        (10.01, "<= 10", False),
        (0, "== 0", True),
        (0.0, "== 0", True),
        (1, "== 0", False),
        (2, "> 1", True),
        (1, "< 1", False),
        (True, "== 1", False),
        ("fast", "<= 1", False),
        (float("nan"), "<= 1", False),
    ],
)
def test_goal_met_compares_the_value_with_the_goal(value, goal, met):
    assert cli.goal_met(value, goal) is met


def test_an_unreadable_goal_is_a_clear_error():
    with pytest.raises(ValueError, match="goal 'about 3'"):
        cli.goal_met(3, "about 3")


def test_bench_measures_every_part_by_default_and_only_those_named(monkeypatch, tmp_path):
    asked: list[tuple[str, ...]] = []

    def run_bench(lab, path, progress=None, parts=()):
        asked.append(parts)
        return FIGURES

    monkeypatch.setattr(bench_module, "run_bench", run_bench)
    out = str(tmp_path / "b.json")
    assert CliRunner().invoke(cli.main, ["bench", "--json", out]).exit_code == 0
    assert (
        CliRunner().invoke(cli.main, ["bench", "--only", "observe", "--json", out]).exit_code == 0
    )
    assert asked == [cli.BENCH_PARTS, ("observe",)]
    assert "observe" in cli.BENCH_PARTS
