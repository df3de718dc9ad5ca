"""The report's HTML pages, from the Jinja2 templates beside this module (`templates/`): the index
(the run table beside 2012's figures, the defense-in-depth matrix as a coloured table, every run)
and one page per run (its facts, its plot as inline SVG, its outcome and timeline).

Pages are self-contained: the CSS is inline, the plots are inline SVG, nothing is fetched and no
script runs. Everything read from a journal is escaped by the templates (autoescape); the only
markup passed through is the SVG matplotlib wrote, which escapes the text it draws.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .format import fmt_int, text_cell, unread_alerts
from .journals import JournalRun
from .markdown import MATRIX_NOTE, TABLE_NOTE
from .matrix import MATRIX_SETS, matrix
from .pages import OUTCOME_COLUMNS, Table, facts, outcome_row, run_tables
from .plot import mark_colour

__all__ = ["html_index", "html_run_page"]


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("toolkit.report", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = text_cell
    env.filters["mark_colour"] = mark_colour
    return env


def _svg_body(svg: str) -> Markup:
    """matplotlib's SVG document as an element to inline: without its XML prolog and doctype."""
    start = svg.find("<svg")
    return Markup(svg[start:] if start >= 0 else "")


# -- a run's page ---------------------------------------------------------------------------------
def html_run_page(run: JournalRun, svg: str) -> str:
    """The page of one run, its plot (`svg`, matplotlib's SVG text) inline under its facts."""
    doc = run.doc
    unread = unread_alerts(doc)
    detected = doc["outcome"].get("detected_at_s") is not None
    return (
        _env()
        .get_template("run.html")
        .render(
            title=f"{doc['experiment']} — {doc['mode']} (guards: {run.guards})",
            run=run,
            doc=doc,
            facts=facts(doc),
            svg=_svg_body(svg),
            outcome=list(zip(OUTCOME_COLUMNS, outcome_row(doc), strict=True)),
            unread=unread if detected else None,
            tables=run_tables(doc),
        )
    )


# -- the index ------------------------------------------------------------------------------------
def _summary(
    latest: Sequence[JournalRun], summary: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """The run table's rows: each run's cells with its page and whether its alerts went unread;
    the rows past the runs (2012's) without."""
    rows: list[dict[str, Any]] = []
    for i, cells in enumerate(summary):
        run = latest[i] if i < len(latest) else None
        unread = None
        if run is not None and run.doc["outcome"].get("detected_at_s") is not None:
            unread = unread_alerts(run.doc)
        rows.append({"cells": cells, "run": run, "unread": unread})
    return rows


def _matrix_rows(runs: Sequence[JournalRun]) -> list[dict[str, Any]] | None:
    found = matrix(runs)
    if found is None:
        return None
    rows = []
    for experiment in found.experiments:
        cells = []
        for label in MATRIX_SETS:
            run = found.cell(experiment, label)
            excess = run.doc["outcome"].get("excess_shares") if run else None
            state = "notrun" if run is None else ("stopped" if not excess else "damage")
            cells.append({"guards": label, "run": run, "text": fmt_int(excess), "state": state})
        rows.append({"experiment": experiment, "cells": cells})
    return rows


def html_index(
    latest: list[JournalRun],
    summary: list[dict[str, str]],
    all_runs: list[JournalRun],
    skipped: list[tuple[Path, str]],
    *,
    columns: Sequence[str],
    source: str,
    journals_dir: Path,
    stop_times: Table | None = None,
) -> str:
    """The index page; the arguments are `markdown.index_page`'s (`stop_times`: the bench's
    table of the two monitors' times, pages.stop_times)."""
    return (
        _env()
        .get_template("index.html")
        .render(
            title="knight — what the experiments did",
            now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            journals_dir=str(journals_dir),
            columns=list(columns),
            rows=_summary(latest, summary),
            table_note=TABLE_NOTE,
            source=source,
            matrix_sets=MATRIX_SETS,
            matrix=_matrix_rows(all_runs),
            matrix_note=MATRIX_NOTE,
            stop_times=stop_times,
            runs=[
                {
                    "stem": run.stem,
                    "status": run.doc["status"],
                    "excess": fmt_int(run.doc["outcome"].get("excess_shares")),
                }
                for run in sorted(all_runs, key=lambda r: r.order, reverse=True)
            ],
            skipped=skipped,
        )
    )
