"""The report: the latest run per experiment, mode and guards beside 2012, a page and a plot per run."""

import json
from datetime import UTC, datetime
from pathlib import Path

from toolkit.experiments.journal import Journal, Outcome, guards_for
from toolkit.report.build import SUMMARY_COLUMNS, build_report, load_incident, summary_rows

PNG = b"\x89PNG\r\n\x1a\n"
FLEET = [f"smars-{i}" for i in range(1, 9)]


def write_run(folder: Path, experiment: str, mode: str, hour: int, guards=None, **outcome) -> Path:
    j = Journal(
        experiment,
        mode,
        guards,
        {"node": "smars-8"},
        clock=lambda: 0.0,
        now=lambda: datetime(2024, 5, 1, hour, 0, tzinfo=UTC),
    )
    j.event("deploy", None, "8.0.0, smars-8 skipped", t=1.0)
    j.event("flag", None, "flag_7 on", t=3.0)
    j.mark_fault(t=3.0)
    for i in range(3):
        j.event("alert", "smars-8", "Power Peg disabled", t=2.0 + i * 0.1)
    for step in range(20):
        runaway = outcome.get("runaway_nodes", [])
        j.sample(
            {n: (900.0 + step if n in runaway and step > 6 else 40.0) for n in FLEET},
            t=step * 0.5,
        )
    j.event("kill", None, "kill switch", t=9.0)
    j.outcome = Outcome(fleet_end=dict.fromkeys(FLEET, "7.1.0"), **outcome)
    deviated = bool(outcome.get("excess_shares"))
    j.finish("deviated" if deviated else "completed", deviated)
    return j.write(reports_dir=folder)


def make_journals(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    # An older unsafe run, superseded by the later one.
    write_run(reports, "skipped_node", "unsafe", 9, excess_shares=5, runaway_nodes=["smars-8"])
    write_run(
        reports,
        "skipped_node",
        "unsafe",
        10,
        parent_orders=1200,
        shares_traded=24_345_600,
        excess_shares=23_900_000,
        runaway_nodes=["smars-8"],
        killed_at_s=6.0,
        loss_usd=1_234_567.0,
    )
    write_run(reports, "skipped_node", "guarded", 11, shares_traded=120_000)
    write_run(
        reports,
        "rollback",
        "unsafe",
        12,
        shares_traded=80_000_000,
        excess_shares=79_000_000,
        runaway_nodes=list(FLEET),
        killed_at_s=75.0,
        loss_usd=3_500_000.0,
    )
    (reports / "journals" / "broken.json").write_text("{ not json")
    return reports / "journals"


def table_row(index: str, first_cell: str) -> list[str]:
    line = next(ln for ln in index.splitlines() if ln.startswith(f"| {first_cell}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_index_has_the_latest_runs_the_2012_row_and_the_right_numbers(tmp_path):
    journals = make_journals(tmp_path)
    result = build_report(journals, tmp_path / "reports")
    index = result.index.read_text()
    assert result.index == tmp_path / "reports" / "index.md"
    assert result.runs == 4
    header = "| " + " | ".join(SUMMARY_COLUMNS) + " |"
    assert header in index
    unsafe = table_row(index, "[skipped_node](experiments/skipped_node-unsafe-20240501T100000Z.md)")
    assert unsafe[1:] == [
        "unsafe",
        "none",
        "deviated",
        "23,900,000",
        "smars-8",
        "never",
        "6.0 s",
        "$1.2M",
        "24,345,600",
    ]
    guarded = table_row(
        index, "[skipped_node](experiments/skipped_node-guarded-20240501T110000Z.md)"
    )
    assert guarded[1:] == ["guarded", "all", "completed", "0", "none", "—", "—", "$0", "120,000"]
    rollback = table_row(index, "[rollback]")
    assert rollback[4:] == ["79,000,000", "all 8", "never", "1 min 15 s", "$3.5M", "80,000,000"]
    knight = table_row(index, "Knight Capital, 2012-08-01")
    assert knight[1:] == [
        "production",
        "none",
        "—",
        "—",
        "1 of 8 servers, then all 8 after the rollback",
        "never (97 e-mails unread)",
        "~45 min",
        "$460M",
        "397,000,000",
    ]
    # The superseded 09:00 run is not in the table, but has its own page.
    assert (
        "experiments/skipped_node-unsafe-20240501T090000Z.md)" not in index.split("## Every run")[0]
    )
    assert "- [skipped_node-unsafe-20240501T090000Z]" in index
    # The 2012 row is last in the table.
    table = [ln for ln in index.split("## Every run")[0].splitlines() if ln.startswith("| ")]
    assert table[-1].startswith("| Knight Capital")
    assert "Defense in depth" not in index


def test_an_unreadable_journal_is_skipped_and_named(tmp_path):
    journals = make_journals(tmp_path)
    result = build_report(journals, tmp_path / "reports")
    assert [p.name for p, _ in result.skipped] == ["broken.json"]
    assert result.skipped[0][1].startswith("not JSON")
    assert "- `broken.json`: not JSON" in result.index.read_text()


def test_each_run_has_a_page_with_its_timeline_and_a_png_plot(tmp_path):
    journals = make_journals(tmp_path)
    result = build_report(journals, tmp_path / "reports")
    assert len(result.pages) == len(result.plots) == 4
    stem = "skipped_node-unsafe-20240501T100000Z"
    page = (tmp_path / "reports" / "experiments" / f"{stem}.md").read_text()
    assert page.startswith("# skipped_node — unsafe (guards: none)")
    assert f"![child orders per second per node]({stem}.png)" in page
    assert "| 1.00 | deploy | — | 8.0.0, smars-8 skipped |" in page
    assert "| 9.00 | kill | — | kill switch |" in page
    assert "| smars-8 | 7.1.0 |" in page
    plot = tmp_path / "reports" / "experiments" / f"{stem}.png"
    assert plot.read_bytes()[:8] == PNG
    assert plot.stat().st_size > 10_000


def test_the_matrix_appears_once_single_guard_runs_exist(tmp_path):
    journals = make_journals(tmp_path)
    reports = journals.parent
    write_run(reports, "skipped_node", "unsafe", 13, guards_for("unsafe", ["atomic"]))
    write_run(
        reports,
        "skipped_node",
        "unsafe",
        14,
        guards_for("unsafe", ["risk"]),
        excess_shares=1_500,
        runaway_nodes=["smars-8"],
    )
    index = build_report(journals, reports).index.read_text()
    matrix = index.split("## Defense in depth")[1]
    header = table_row(matrix, "experiment")
    assert header == [
        "experiment",
        "none",
        "atomic",
        "fencing",
        "flags",
        "risk",
        "monitor",
        "rollback",
        "all",
    ]
    assert table_row(matrix, "skipped_node") == [
        "skipped_node",
        "23,900,000",
        "0",
        "—",
        "—",
        "1,500",
        "—",
        "—",
        "0",
    ]
    assert table_row(matrix, "rollback")[1:3] == ["79,000,000", "—"]


def test_summary_rows_for_the_cli(tmp_path):
    journals = make_journals(tmp_path)
    rows = summary_rows(journals)
    assert [tuple(r) for r in rows] == [SUMMARY_COLUMNS] * 4
    assert [(r["experiment"], r["mode"]) for r in rows] == [
        ("rollback", "unsafe"),
        ("skipped_node", "unsafe"),
        ("skipped_node", "guarded"),
        ("Knight Capital, 2012-08-01", "production"),
    ]
    assert rows[1]["excess shares"] == "23,900,000"


def test_an_empty_journal_folder_still_gives_the_2012_row(tmp_path):
    result = build_report(tmp_path / "none", tmp_path / "out")
    index = result.index.read_text()
    assert "No runs yet" in index
    assert table_row(index, "Knight Capital, 2012-08-01")[-2:] == ["$460M", "397,000,000"]


def test_the_shipped_incident_figures_are_the_2012_ones():
    figures = load_incident()
    assert figures["loss_usd"] == 460_000_000
    assert figures["shares_traded"] == 397_000_000
    assert figures["servers"] == 8
    assert figures["duration_minutes"] == 45


def test_an_incident_file_overrides_what_it_gives_and_the_shipped_figures_fill_the_rest(tmp_path):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"loss_usd": 1, "shares_traded": 2}))
    figures = load_incident(path)
    assert (figures["loss_usd"], figures["shares_traded"]) == (1, 2)
    assert (figures["servers"], figures["duration_minutes"]) == (8, 45)
