"""`knight report` reads the journal of a `chaos run` of an exported experiment beside knight's
own: its row, its page and its plot, from the journal's `knight` extension entry."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.experiments.journal import GUARDS, Journal, Outcome
from toolkit.report.build import build_report
from toolkit.report.journals import from_chaostoolkit

FLEET = [f"smars-{i}" for i in range(1, 9)]
START = "2026-11-30T07:49:48+00:00"  # 1796024988.0
VENUE_START = 1796024988.0 + 7.0  # the guards control reset the venue 7 s in


def _action(name: str, func: str, second: int, output: dict, description: str) -> dict:
    return {
        "activity": {
            "type": "action",
            "name": name,
            "description": description,
            "provider": {"type": "python", "func": func},
        },
        "output": output,
        "status": "succeeded",
        "start": f"2026-11-30T07:{49 + (48 + second) // 60:02d}:{(48 + second) % 60:02d}+00:00",
    }


def chaos_journal(**extension: object) -> dict:
    steps = [
        (
            "method-1-deploy",
            "deploy",
            7,
            {"activity": "deploy", "status": "done", "detail": "8.0.0 on 7 nodes"},
            "copy 8.0.0",
        ),
        (
            "method-2-flag",
            "flag",
            20,
            {"activity": "flag", "status": "done", "detail": "flag_7 on"},
            "flag_7 on",
        ),
        (
            "method-3-open",
            "open_market",
            21,
            {"activity": "open", "status": "done", "detail": "200/s"},
            "the open",
        ),
    ]
    entry = {
        "name": "knight",
        "experiment": "skipped_node",
        "mode": "unsafe",
        "guards": dict.fromkeys(GUARDS, False),
        "venue_started_at": VENUE_START,
        "outcome": {
            "parent_orders": 821,
            "child_orders": 6694,
            "executions": 6694,
            "shares_traded": 669_400,
            "excess_shares": 587_300,
            "runaway_nodes": ["smars-8"],
            "detected_at_s": None,
            "killed_at_s": None,
            "loss_usd": 360_737.0,
            "fleet_end": {n: ("7.1.0" if n == "smars-8" else "8.0.0") for n in FLEET},
        },
        "series": {
            "interval_s": 0.5,
            "t": [0.0, 0.5, 1.0],
            "child_orders_per_s": {n: [0.0, 10.0, 500.0 if n == "smars-8" else 4.0] for n in FLEET},
        },
        "errors": [],
    } | extension
    return {
        "chaoslib-version": "1.44.0",
        "experiment": {"title": "t", "configuration": {"knight_mode": "unsafe", "node": "smars-8"}},
        "start": START,
        "end": "2026-11-30T07:51:53+00:00",
        "duration": 125.0,
        "status": "completed",
        "deviated": True,
        "steady_states": {
            "before": None,
            "after": {
                "steady_state_met": False,
                "probes": [
                    {
                        "activity": {
                            "name": "excess_shares",
                            "tolerance": {"type": "range", "range": [0, 0]},
                        },
                        "output": 587_300,
                        "tolerance_met": False,
                    },
                ],
            },
        },
        "run": [_action(*s) for s in steps],
        "rollbacks": [
            _action(
                "rollback-1-kill",
                "kill",
                100,
                {"activity": "kill", "status": "done", "detail": "killed"},
                "kill switch",
            )
        ],
        "extensions": [entry],
    }


def test_a_chaos_journal_reads_as_knights_journal():
    doc = from_chaostoolkit(chaos_journal())
    assert (doc["experiment"], doc["mode"], doc["status"], doc["deviated"]) == (
        "skipped_node",
        "unsafe",
        "deviated",
        True,
    )
    assert doc["outcome"]["runaway_nodes"] == ["smars-8"]
    assert doc["parameters"] == {"node": "smars-8"}
    assert [(e["t"], e["kind"]) for e in doc["timeline"]] == [
        (7.0, "deploy"),
        (20.0, "flag"),
        (21.0, "open"),
        (100.0, "rollback_kill"),
    ]
    assert doc["timeline"][0]["detail"] == "copy 8.0.0: 8.0.0 on 7 nodes"
    assert doc["series"]["t"] == [7.0, 7.5, 8.0]  # from the venue's start to the journal's
    assert doc["steady_state"]["after"] == [
        {"probe": "excess_shares", "tolerance": 0, "value": 587_300, "ok": False}
    ]


def test_the_report_has_a_row_a_page_and_a_plot_for_a_chaos_run(tmp_path: Path):
    journals = tmp_path / "reports" / "journals"
    journals.mkdir(parents=True)
    (journals / "skipped_node-unsafe-chaos.json").write_text(json.dumps(chaos_journal()))
    result = build_report(journals, tmp_path / "reports")
    (row,) = [r for r in result.rows if r["experiment"] == "skipped_node (chaos run)"]
    assert (row["mode"], row["status"], row["excess shares"], row["runaway nodes"]) == (
        "unsafe",
        "deviated",
        "587,300",
        "smars-8",
    )
    page = (tmp_path / "reports" / "experiments" / "skipped_node-unsafe-chaos.md").read_text()
    assert "587,300" in page and "copy 8.0.0: 8.0.0 on 7 nodes" in page
    assert "| run by | chaos run |" in page
    png = tmp_path / "reports" / "experiments" / "skipped_node-unsafe-chaos.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.skipped == []


def test_a_chaos_run_has_its_row_beside_knights_own_run_of_the_same_experiment(tmp_path: Path):
    journals = tmp_path / "journals"
    journals.mkdir()
    (journals / "skipped_node-unsafe-chaos.json").write_text(json.dumps(chaos_journal()))
    # knight's own run of the same experiment, mode and guards, made later.
    own = Journal("skipped_node", "unsafe", dict.fromkeys(GUARDS, False), {"node": "smars-8"})
    own.outcome = Outcome(excess_shares=12, runaway_nodes=["smars-8"])
    own.finish("deviated", True)
    own.write(journals / "skipped_node-unsafe-own.json")
    result = build_report(journals, tmp_path / "report")
    rows = [(r["experiment"], r["excess shares"]) for r in result.rows[:-1]]
    assert rows == [("skipped_node", "12"), ("skipped_node (chaos run)", "587,300")]
    index = (tmp_path / "report" / "index.md").read_text()
    assert "[skipped_node (chaos run)](experiments/skipped_node-unsafe-chaos.md)" in index
    assert "[skipped_node](experiments/skipped_node-unsafe-own.md)" in index
    page = (tmp_path / "report" / "experiments" / "skipped_node-unsafe-own.md").read_text()
    assert "| run by | knight experiment run |" in page


def test_a_chaos_journal_without_knights_outcome_is_skipped_and_says_why(tmp_path: Path):
    journals = tmp_path / "journals"
    journals.mkdir()
    doc = chaos_journal()
    doc["extensions"] = []
    (journals / "other.json").write_text(json.dumps(doc))
    result = build_report(journals, tmp_path)
    assert [(p.name, why) for p, why in result.skipped] == [
        (
            "other.json",
            "a Chaos Toolkit journal knight cannot read: no knight outcome (was it "
            "exported by knight and run with its controls?)",
        )
    ]
