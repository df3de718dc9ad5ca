"""An unsafe run's alert went to the mailbox nobody reads: its time to detect reads as alerted
and unread (as 2012's "never (97 e-mails unread)"), not as a detection in 0.0 s."""

from __future__ import annotations

import re
from pathlib import Path

from test_report_build import FLEET, table_row, write_run

from toolkit.experiments.journal import guards_for
from toolkit.report.build import build_report
from toolkit.report.format import detect_text, unread_alerts


def test_a_mailbox_alert_reads_as_never_alerted_and_unread():
    doc = {
        "guards": guards_for("unsafe", []),
        "timeline": [{"kind": "alert"}] * 3 + [{"kind": "monitor"}],
        "outcome": {"detected_at_s": 0.0},
    }
    assert unread_alerts(doc) == 3
    assert detect_text(doc) == "never (alerted at 0.0 s, 3 e-mails unread)"


def test_an_alert_that_acted_reads_as_its_time():
    doc = {
        "guards": guards_for("guarded"),
        "timeline": [{"kind": "alert"}],
        "outcome": {"detected_at_s": 0.34},
    }
    assert unread_alerts(doc) is None
    assert detect_text(doc) == "0.3 s"


def test_no_alert_at_all_reads_as_never_or_nothing_to_detect():
    doc = {"guards": guards_for("unsafe", []), "timeline": [], "outcome": {"detected_at_s": None}}
    assert detect_text(doc) == "never"
    assert detect_text(doc, "—") == "—"


def test_the_tables_say_alerted_and_unread_above_2012s_never(tmp_path: Path):
    reports = tmp_path / "reports"
    write_run(
        reports, "rollback", "unsafe", 9, detected_at_s=0.0, excess_shares=9, runaway_nodes=FLEET
    )
    result = build_report(reports / "journals", reports)
    index = result.index.read_text()
    unsafe = table_row(index, "[rollback]")
    knight = table_row(index, "Knight Capital")
    assert unsafe[6] == "never (alerted at 0.0 s, 3 e-mails unread)"
    assert knight[6] == "never (97 e-mails unread)"
    page = (reports / "experiments" / "rollback-unsafe-20240501T090000Z.md").read_text()
    assert "| never (alerted at 0.0 s, 3 e-mails unread) |" in page
    html = result.html.read_text()
    assert re.search(
        r'class="num unread"[^>]*>never \(alerted at 0\.0 s, 3 e-mails unread\)<', html
    )
