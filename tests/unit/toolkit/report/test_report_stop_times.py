"""The report shows the bench's side-by-side times of the two monitor paths beside 2012's, and
nothing of them before the bench has measured them."""

from __future__ import annotations

import json

from toolkit.report.build import INCIDENT_2012, build_report
from toolkit.report.markdown import stop_times_section

BENCH = {
    "builtin_detect_s": 0.214,
    "builtin_kill_s": 0.391,
    "prometheus_detect_s": 1.402,
    "prometheus_kill_s": 2.637,
    "goals": {"builtin_kill_s": "<= 1.0", "prometheus_kill_s": "<= 5"},
    "measured_at": "2026-11-30T10:00:00+00:00",
}


def test_both_paths_beside_2012s_45_minutes():
    text = "\n".join(stop_times_section(BENCH, INCIDENT_2012))
    assert "## Time to stop a runaway" in text
    assert "| knight's own monitor (a scrape every 200 ms) | 0.21 s | 0.39 s | <= 1.0 |" in text
    assert "| 1.40 s | 2.64 s | <= 5 |" in text
    assert "| Knight Capital, 2012 (97 e-mails unread) | never | 45 min | — |" in text


def test_a_path_that_never_killed_reads_never():
    text = "\n".join(stop_times_section({**BENCH, "prometheus_kill_s": None}, INCIDENT_2012))
    assert "| 1.40 s | never | <= 5 |" in text


def test_no_section_before_the_bench_measured_them():
    assert stop_times_section({"lab_up_s": 3.0}, INCIDENT_2012) == []


def test_the_index_carries_the_section_when_bench_json_is_beside_it(tmp_path):
    journals = tmp_path / "journals"
    journals.mkdir()
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    index = build_report(journals, tmp_path).index.read_text()
    assert "## Time to stop a runaway" in index
    (tmp_path / "bench.json").write_text("not json")
    assert "Time to stop a runaway" not in build_report(journals, tmp_path).index.read_text()
