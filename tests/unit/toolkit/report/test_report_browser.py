"""The HTML report in a real browser (headless Chromium): every page opens without a console
error and fetches nothing, its figures are the journals' it was built from, the unsafe runs'
alerts read as sent and unread, the matrix is coloured by what each guard stopped, every alert,
guard event and kill is marked on the run's plot with labels that do not cover each other, and a
screenshot is not blank.

The journals are real ones (tests/unit/toolkit/report/journals/), written by experiment runs on
the lab; the expected figures are read from them here, not from the report's code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from report_browser import Loaded, chromium, colours, open_page, rects_overlap
from selenium.webdriver.common.by import By

from toolkit.experiments.journal import guard_label
from toolkit.report.build import INCIDENT_2012, build_report

JOURNALS = Path(__file__).resolve().parent / "journals"


def journals() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JOURNALS.glob("*.json"))}


def alerts(doc: dict[str, Any]) -> int:
    return sum(e["kind"] == "alert" for e in doc["timeline"])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    shutil.copytree(JOURNALS, out / "journals")
    build_report(out / "journals", out)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


def cell(row, column: str):
    return row.find_element(By.CSS_SELECTOR, f'td[data-col="{column}"]')


def test_the_fixture_journals_cover_what_the_pages_must_show():
    docs = journals().values()
    assert len(docs) >= 4
    assert any(
        not d["guards"]["monitor"] and d["outcome"]["detected_at_s"] is not None for d in docs
    )
    assert any(d["guards"]["monitor"] and d["outcome"]["killed_at_s"] is not None for d in docs)
    assert any(e["kind"] == "guard" for d in docs for e in d["timeline"])
    assert any(guard_label(d["guards"]) not in ("none", "all") for d in docs)  # a matrix cell


def test_the_checks_catch_a_console_error_a_fetch_and_a_blank_page(browser, tmp_path):
    bad = tmp_path / "bad.html"
    (tmp_path / "style.css").write_text("body { color: #333; }")
    bad.write_text(
        '<!DOCTYPE html><title>bad</title><link rel="stylesheet" href="style.css">'
        "<script>console.error('boom')</script>"
        '<img src="missing.png" alt="">'
    )
    loaded = open_page(browser, bad)
    assert any("boom" in e for e in loaded.errors)
    assert any("missing.png" in e for e in loaded.errors)
    assert sorted(u.rsplit("/", 1)[-1] for u in loaded.fetched) == ["missing.png", "style.css"]
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><title>blank</title><body style='background:#fff'>")
    assert open_page(browser, blank) == Loaded([], [])
    assert colours(browser) == (1, 1.0)


def test_every_page_opens_without_a_console_error_and_fetches_nothing(report, browser):
    pages = [report / "index.html", *sorted((report / "experiments").glob("*.html"))]
    assert len(pages) == 1 + len(journals())
    for page in pages:
        assert open_page(browser, page) == Loaded([], []), page.name
        assert browser.find_elements(By.TAG_NAME, "script") == [], page.name


def test_the_index_shows_each_runs_figures_as_its_journal_has_them(report, browser):
    assert open_page(browser, report / "index.html").errors == []
    docs = journals()
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr[data-run]")
    assert sorted(r.get_attribute("data-run") for r in rows) == sorted(docs)
    for row in rows:
        doc = docs[row.get_attribute("data-run")]
        outcome = doc["outcome"]
        assert cell(row, "experiment").text == doc["experiment"]
        assert cell(row, "guards").text == guard_label(doc["guards"])
        assert cell(row, "excess shares").text == f"{outcome['excess_shares']:,}"
        assert cell(row, "shares traded").text == f"{outcome['shares_traded']:,}"
        detect = cell(row, "time to detect")
        if outcome["detected_at_s"] is None:
            assert detect.text in ("never", "—")
        elif doc["guards"]["monitor"]:
            assert detect.text == f"{outcome['detected_at_s']:.1f} s"
        else:  # the alert went to the mailbox: alerted, and unread
            assert detect.text == (
                f"never (alerted at {outcome['detected_at_s']:.1f} s, {alerts(doc)} e-mails unread)"
            )
            assert "unread" in detect.get_attribute("class").split()
    links = [
        a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#every-run a")
    ]
    assert sorted(link.rsplit("/", 1)[-1] for link in links) == sorted(f"{s}.html" for s in docs)


def test_an_unsafe_runs_alert_reads_as_sent_and_unread_like_2012s(report, browser):
    open_page(browser, report / "index.html")
    unread = browser.find_elements(By.CSS_SELECTOR, '#runs td.unread[data-col="time to detect"]')
    mailbox = [
        d
        for d in journals().values()
        if not d["guards"]["monitor"] and d["outcome"]["detected_at_s"] is not None
    ]
    assert len(unread) == len(mailbox) > 0
    incident = browser.find_element(By.CSS_SELECTOR, "#runs tr[data-incident]")
    emails = INCIDENT_2012["pre_open_alert_emails"]
    assert cell(incident, "time to detect").text == f"never ({emails} e-mails unread)"
    for td in unread:  # no longer a "0.0 s" that reads as caught at once
        assert td.text.startswith("never (alerted at ") and td.text.endswith(" e-mails unread)")


def test_the_matrix_is_coloured_by_the_excess_shares_of_each_cells_run(report, browser):
    open_page(browser, report / "index.html")
    docs = {(d["experiment"], guard_label(d["guards"])): d for d in journals().values()}
    cells = browser.find_elements(By.CSS_SELECTOR, "#matrix td[data-guards]")
    assert cells
    seen = set()
    for td in cells:
        key = (td.get_attribute("data-experiment"), td.get_attribute("data-guards"))
        doc = docs.get(key)
        red, green, _ = (int(v) for v in td.value_of_css_property("background-color")
                         .removeprefix("rgba(").removeprefix("rgb(").rstrip(")").split(",")[:3])  # fmt: skip
        if doc is None:
            assert (td.get_attribute("data-state"), td.text) == ("notrun", "—")
        elif doc["outcome"]["excess_shares"]:
            assert td.text == f"{doc['outcome']['excess_shares']:,}" and red > green
            seen.add("damage")
        else:
            assert td.text == "0" and green > red
            seen.add("stopped")
    assert seen == {"damage", "stopped"}


def test_each_run_page_marks_every_alert_guard_event_and_kill_with_labels_apart(report, browser):
    for stem, doc in journals().items():
        assert open_page(browser, report / "experiments" / f"{stem}.html").errors == []
        svg = browser.find_element(By.CSS_SELECTOR, "#plot svg")
        kinds = [e["kind"] for e in doc["timeline"]]
        ticks = svg.find_elements(By.CSS_SELECTOR, "g#mark-alerts path")
        assert len(ticks) == kinds.count("alert"), stem
        for kind, count in (
            ("guard", kinds.count("guard")),
            ("kill", kinds.count("kill") + kinds.count("rollback_kill")),
            ("runaway", kinds.count("runaway")),
        ):
            marked = svg.find_elements(By.CSS_SELECTOR, f'g[id^="mark-{kind}-"]')
            assert len(marked) == count, (stem, kind)
        rows = browser.execute_script(  # one round trip, not one per row
            "return [...document.querySelectorAll('#timeline tr[data-kind]')].map(r => r.dataset.kind)"
        )
        assert rows == kinds, stem
        outcome = browser.find_element(By.ID, "outcome")
        assert cell(outcome, "excess shares").text == f"{doc['outcome']['excess_shares']:,}"
        rects = browser.execute_script(
            "return [...document.querySelectorAll('#plot g[id^=\"mark-label-\"]')]"
            ".map(g => g.getBoundingClientRect().toJSON())"
        )
        assert rects, stem
        clashes = [
            (i, j) for i in range(len(rects)) for j in range(i) if rects_overlap(rects[i], rects[j])
        ]
        assert clashes == [], stem


def test_a_screenshot_of_each_kind_of_page_is_not_blank(report, browser):
    stem = max(journals().items(), key=lambda kv: alerts(kv[1]))[0]
    for page in (report / "index.html", report / "experiments" / f"{stem}.html"):
        open_page(browser, page)
        distinct, commonest = colours(browser)
        assert distinct > 100, page.name
        assert commonest < 0.95, page.name


def test_what_a_journal_says_is_shown_as_text_never_run_as_markup(browser, tmp_path):
    doc = min(journals().values(), key=lambda d: len(d["timeline"]))  # the quickest to draw
    hostile = "<script>console.error('injected')</script><b>bold</b> & $460M"
    doc["timeline"].append({"t": 1.0, "kind": "alert", "node": "<i>smars-1</i>", "detail": hostile})
    doc["parameters"] = {"node": hostile}
    folder = tmp_path / "journals"
    folder.mkdir()
    (folder / "hostile.json").write_text(json.dumps(doc))
    build_report(folder, tmp_path)
    page = tmp_path / "experiments" / "hostile.html"
    assert open_page(browser, page) == Loaded([], [])
    assert browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.find_elements(By.TAG_NAME, "b") == []
    assert (
        browser.find_element(By.CSS_SELECTOR, '[data-fact="parameters"]').text == f"node={hostile}"
    )
    assert hostile in browser.find_element(By.ID, "timeline").text
