"""The loaded experiment as data: probes, abort conditions, expectations."""

from pathlib import Path

import pytest

from toolkit.errors import ConfigError
from toolkit.experiments.loader import load_experiment
from toolkit.experiments.model import AbortCondition, Probe

FLEET = tuple(f"smars-{i}" for i in range(1, 9))


def test_probes_hold_within_tolerance():
    assert Probe("excess_shares", 0).holds(0)
    assert not Probe("excess_shares", 0).holds(100)
    assert not Probe("orders_lost", 0).holds(None)
    assert Probe("fleet_uniform", "any").holds({"smars-1": "7.1.0", "smars-2": "7.1.0"})
    assert not Probe("fleet_uniform", "any").holds({"smars-1": "7.1.0", "smars-2": "8.0.0"})
    assert not Probe("fleet_uniform", "8.0.0").holds({"smars-1": "7.1.0"})


def test_abort_conditions_trip_strictly_over_their_limit():
    excess = AbortCondition("excess_shares_over", 1000)
    assert excess.observes == "excess_shares"
    assert not excess.tripped({"excess_shares": 1000})
    assert excess.tripped({"excess_shares": 1001})
    assert not excess.tripped({})
    assert AbortCondition("duration_over_s", 30).tripped({"elapsed_s": 30.5})


def _experiment(tmp_path: Path):
    path = tmp_path / "exp.yml"
    path.write_text(
        "title: x\n"
        "parameters: {node: smars-8}\n"
        "method:\n"
        "  - deploy: {release: '8.0.0', skip: ['{node}']}\n"
        "expect:\n"
        "  unsafe: {deviated: true, runaway_nodes: not_deployed, excess_shares_over: 0}\n"
        "  guarded: {runaway_nodes: none, excess_shares: 0, fleet_end: '7.1.0', killed: false}\n"
    )
    return load_experiment(path, {}, fleet=FLEET, releases=("7.1.0", "8.0.0"))


def test_expectations_check_a_journal_and_say_what_was_seen(tmp_path):
    exp = _experiment(tmp_path)
    journal = {
        "deviated": True,
        "status": "deviated",
        "outcome": {"excess_shares": 52_000, "runaway_nodes": ["smars-8"], "killed_at_s": 4.0},
    }
    results = exp.expectations("unsafe").check(journal)
    assert [(r.name, r.expected, r.actual, r.met) for r in results] == [
        ("deviated", True, True, True),
        ("runaway_nodes", ("smars-8",), ["smars-8"], True),
        ("excess_shares_over", 0, 52_000, True),
    ]
    assert results[1].to_json() == {
        "name": "runaway_nodes",
        "expected": ["smars-8"],
        "actual": ["smars-8"],
        "met": True,
    }


def test_guarded_expectations_fail_on_damage(tmp_path):
    exp = _experiment(tmp_path)
    journal = {
        "deviated": False,
        "outcome": {
            "excess_shares": 10,
            "runaway_nodes": [],
            "killed_at_s": None,
            "fleet_end": {"smars-1": "7.1.0", "smars-2": "8.0.0"},
        },
    }
    met = {r.name: r.met for r in exp.expectations("guarded").check(journal)}
    assert met == {
        "runaway_nodes": True,
        "excess_shares": False,
        "fleet_end": False,
        "killed": True,
    }


def test_an_unknown_mode_is_a_config_error(tmp_path):
    exp = _experiment(tmp_path)
    with pytest.raises(ConfigError, match="unknown mode 'reckless'"):
        exp.expectations("reckless")
