"""The router, routerd and the venue each write their own JSON log lines (none imports another's
code), and the lines have one shape: the same common keys, the same time format."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import routerd
from market import venue
from smars.log import Log

COMMON = ("ts", "component", "node", "level", "event")
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _router_line() -> str:
    out = io.StringIO()
    Log("smars-1", stream=out).warning("probe", detail="x")
    return out.getvalue()


def _routerd_line(capsys: pytest.CaptureFixture[str]) -> str:
    routerd._log("warning", "probe", detail="x")
    return capsys.readouterr().out


def _venue_line(capsys: pytest.CaptureFixture[str]) -> str:
    venue._log("probe", level="warning", detail="x")
    return capsys.readouterr().out


def test_router_routerd_and_venue_write_one_shape(capsys: pytest.CaptureFixture[str]):
    before = datetime.now(UTC)
    capsys.readouterr()
    lines = {
        "router": _router_line(),
        "routerd": _routerd_line(capsys),
        "venue": _venue_line(capsys),
    }
    after = datetime.now(UTC)
    for component, text in lines.items():
        assert text.endswith("\n") and text.count("\n") == 1, (component, text)
        record = json.loads(text)
        assert tuple(record)[: len(COMMON)] == COMMON, (component, record)
        assert record["component"] == component
        assert record["level"] == "warning"
        assert record["event"] == "probe"
        assert record["detail"] == "x"
        assert isinstance(record["node"], str) and record["node"]
        # ISO-8601 UTC to the millisecond with a Z, e.g. 2024-05-01T12:00:00.123Z
        assert TS.fullmatch(record["ts"]), (component, record["ts"])
        ts = datetime.strptime(record["ts"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert before - timedelta(milliseconds=1) <= ts <= after, (component, record["ts"])
