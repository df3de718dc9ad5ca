"""The journal JSON is the documented contract, recorded as the run goes and written atomically."""

import json
from datetime import UTC, datetime

import pytest

from toolkit.errors import ConfigError
from toolkit.experiments.journal import (
    GUARDS,
    JOURNAL_KEYS,
    OUTCOME_KEYS,
    Journal,
    JournalError,
    NodeSample,
    Outcome,
    ProbeResult,
    exit_code,
    guard_label,
    guards_for,
    read_journal,
)

CONTRACT = {
    "experiment",
    "mode",
    "guards",
    "status",
    "deviated",
    "start",
    "end",
    "duration_s",
    "timeline",
    "series",
    "outcome",
}
EXTRAS = {"steady_state", "parameters", "expectations", "expectations_met"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def journal(mode: str = "unsafe", guards=None) -> tuple[Journal, Clock]:
    clock = Clock()
    stamp = datetime(2012, 8, 1, 13, 30, 0, tzinfo=UTC)
    j = Journal(
        "skipped_node",
        mode,
        guards,
        {"node": "smars-8"},
        interval_s=0.5,
        clock=clock,
        now=lambda: stamp,
    )
    return j, clock


def test_the_json_has_exactly_the_contract_keys():
    j, clock = journal()
    clock.now += 12.5
    j.finish("deviated", True)
    doc = j.to_json()
    assert set(doc) == CONTRACT | EXTRAS
    assert tuple(doc) == JOURNAL_KEYS
    assert tuple(doc["outcome"]) == OUTCOME_KEYS
    assert set(doc["series"]) == {"interval_s", "t", "child_orders_per_s", "samples"}
    assert doc["guards"] == dict.fromkeys(GUARDS, False)
    assert (doc["start"], doc["end"], doc["duration_s"]) == (
        "2012-08-01T13:30:00.000Z",
        "2012-08-01T13:30:00.000Z",
        12.5,
    )
    assert (doc["status"], doc["deviated"], doc["expectations_met"]) == ("deviated", True, None)


def test_events_samples_and_outcome_are_recorded_in_seconds_from_the_start():
    j, clock = journal()
    clock.now += 1.25
    j.event("deploy", None, "8.0.0 to 7 nodes, smars-8 skipped")
    clock.now += 1.0
    j.event("flag", None, "flag_7 on (rlp)")
    j.mark_fault()
    j.sample({"smars-1": 40, "smars-8": 40})
    clock.now += 0.5
    j.sample({"smars-1": 41.04, "smars-8": 3000})
    clock.now += 0.5
    j.sample({"smars-1": 39, "smars-8": None, "smars-2": 12})
    j.event("kill", None, "kill switch", t=5.0)
    j.outcome = Outcome(
        parent_orders=1200,
        child_orders=250_000,
        executions=240_000,
        shares_traded=24_000_000,
        excess_shares=23_900_000,
        runaway_nodes=["smars-8"],
        detected_at_s=None,
        killed_at_s=j.since_fault(5.0),
        loss_usd=1_234_567.0,
        fleet_end={"smars-10": "8.0.0", "smars-8": "7.1.0", "smars-1": "8.0.0"},
    )
    j.steady("before", [ProbeResult("excess_shares", 0, 0, True)])
    j.steady(
        "after", [{"probe": "excess_shares", "tolerance": 0, "value": 23_900_000, "ok": False}]
    )
    j.finish(
        "deviated", True, [{"name": "deviated", "expected": True, "actual": True, "met": True}]
    )
    doc = j.to_json()
    assert doc["timeline"] == [
        {"t": 1.25, "kind": "deploy", "node": None, "detail": "8.0.0 to 7 nodes, smars-8 skipped"},
        {"t": 2.25, "kind": "flag", "node": None, "detail": "flag_7 on (rlp)"},
        {"t": 5.0, "kind": "kill", "node": None, "detail": "kill switch"},
    ]
    assert doc["series"] == {
        "interval_s": 0.5,
        "t": [2.25, 2.75, 3.25],
        "child_orders_per_s": {
            "smars-1": [40.0, 41.0, 39.0],
            "smars-2": [None, None, 12.0],
            "smars-8": [40.0, 3000.0, None],
        },
        "samples": [],
    }
    assert doc["outcome"]["killed_at_s"] == 2.75
    assert list(doc["outcome"]["fleet_end"]) == ["smars-1", "smars-8", "smars-10"]
    assert doc["steady_state"]["after"] == [
        {"probe": "excess_shares", "tolerance": 0, "value": 23_900_000, "ok": False}
    ]
    assert doc["expectations_met"] is True
    assert doc["parameters"] == {"node": "smars-8"}


def test_node_samples_are_recorded_as_the_run_goes_in_node_order():
    j, clock = journal()
    assert j.latest_sample() is None
    clock.now += 2.5
    skipped = NodeSample(
        release="7.1.0",
        trading=True,
        flags={"flag_7": {"on": True, "meaning": "rlp", "code_meaning": "power_peg"}},
        parent_orders_per_s=25.0,
        child_orders_per_s=2310.0,
        excess_shares=41200,
    )
    j.sample_nodes({"smars-10": NodeSample(excess_shares=None), "smars-8": skipped})
    assert j.latest_sample() == (2.5, {"smars-10": NodeSample(), "smars-8": skipped})
    doc = j.to_json()
    assert doc["series"]["samples"] == [
        {
            "t": 2.5,
            "nodes": {
                "smars-8": {
                    "release": "7.1.0",
                    "trading": True,
                    "flags": {
                        "flag_7": {"on": True, "meaning": "rlp", "code_meaning": "power_peg"}
                    },
                    "parent_orders_per_s": 25.0,
                    "child_orders_per_s": 2310.0,
                    "excess_shares": 41200,
                },
                "smars-10": {
                    "release": None,
                    "trading": None,
                    "flags": {},
                    "parent_orders_per_s": None,
                    "child_orders_per_s": None,
                    "excess_shares": None,
                },
            },
        }
    ]
    assert list(doc["series"]["samples"][0]["nodes"]) == ["smars-8", "smars-10"]


def test_rates_come_from_cumulative_counters():
    j, clock = journal()
    j.sample_totals({"smars-1": 100, "smars-2": 50})
    assert j.series.t == []
    clock.now += 0.5
    j.sample_totals({"smars-1": 150, "smars-2": 10, "smars-3": None})
    assert j.series.child_orders_per_s == {
        "smars-1": [100.0],
        "smars-2": [20.0],  # went down: the node restarted, its counter began again
        "smars-3": [None],
    }


def test_guard_sets_and_labels():
    assert guards_for("guarded") == dict.fromkeys(GUARDS, True)
    assert guards_for("unsafe", ["risk", "atomic"]) == {
        "atomic": True,
        "fencing": False,
        "flags": False,
        "risk": True,
        "monitor": False,
        "rollback": False,
    }
    assert guard_label(guards_for("unsafe")) == "none"
    assert guard_label(guards_for("guarded")) == "all"
    assert guard_label(guards_for("unsafe", ["risk", "atomic"])) == "atomic+risk"
    with pytest.raises(ConfigError, match="unknown guard 'fence'"):
        guards_for("unsafe", ["fence"])


def test_default_path_names_experiment_mode_guards_and_utc_stamp(tmp_path):
    j, _ = journal()
    assert (
        j.default_path(tmp_path) == tmp_path / "journals/skipped_node-unsafe-20120801T133000Z.json"
    )
    j2, _ = journal("unsafe", guards_for("unsafe", ["atomic"]))
    assert j2.default_path(tmp_path).name == "skipped_node-unsafe-atomic-20120801T133000Z.json"


def test_write_is_atomic_and_never_overwrites_another_run(tmp_path):
    j, _ = journal()
    j.finish("completed", False)
    first = j.write(reports_dir=tmp_path)
    second = j.write(reports_dir=tmp_path)
    assert first.name == "skipped_node-unsafe-20120801T133000Z.json"
    assert second.name == "skipped_node-unsafe-20120801T133000Z-2.json"
    assert {p.name for p in (tmp_path / "journals").iterdir()} == {first.name, second.name}
    assert read_journal(first)["status"] == "completed"


def test_an_unfinished_journal_reads_as_failed():
    j, clock = journal()
    clock.now += 3
    doc = j.to_json()
    assert (doc["status"], doc["duration_s"]) == ("failed", 3.0)


def test_finish_refuses_an_undocumented_status():
    j, _ = journal()
    with pytest.raises(ValueError, match="status is one of completed, deviated"):
        j.finish("exploded", True)


def test_exit_codes_are_non_zero_unless_the_hypothesis_held():
    assert [
        exit_code(s) for s in ("completed", "deviated", "aborted", "failed", "interrupted")
    ] == [
        0,
        1,
        1,
        1,
        130,
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"experiment": "x"}', "missing mode, guards"),
    ],
)
def test_read_journal_says_what_is_wrong(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(JournalError, match=reason):
        read_journal(path)


def test_written_file_is_plain_json(tmp_path):
    j, _ = journal()
    j.finish("completed", False)
    path = j.write(tmp_path / "j.json")
    assert json.loads(path.read_text())["experiment"] == "skipped_node"
