"""The flag registry: the shipped file lints clean, each rule finds its problem,
and each mistake in the file names its file and line."""

from __future__ import annotations

import json
import textwrap
from datetime import date
from pathlib import Path

import pytest

from toolkit.errors import ConfigError, KnightError
from toolkit.guards.flag_registry import (
    FlagLintError,
    check_release,
    lint,
    load_registry,
    meaning_of,
    newest_release,
    scan_source,
)
from toolkit.releases.catalog import load_catalog
from toolkit.settings import Settings

S = Settings()
TODAY = date(2026, 1, 15)

FLAG_7 = """\
  flag_7:
    meaning: power_peg
    owner: trading-platform
    created: 2003-03-03
    expires: null
    status: retired
    history:
      - {date: 2003-03-03, meaning: power_peg, note: Power Peg.}
      - {date: 2012-08-02, status: retired, note: Removed in 8.0.1.}
"""
RLP_ENABLE = """\
  rlp_enable:
    meaning: rlp
    owner: trading-platform
    created: 2012-07-02
    expires: {expires}
    status: active
"""


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(S.catalog_path, S.router_source)


@pytest.fixture(scope="module")
def shipped():
    return load_registry(S.registry_path)


def registry_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flags.yaml"
    path.write_text(body)
    return path


def registry(tmp_path: Path, *entries: str):
    return load_registry(registry_file(tmp_path, "flags:\n" + "".join(entries)))


def problems(report) -> list[tuple[str, str | None, str]]:
    return [(p.flag, p.release, p.rule) for p in report.problems]


# -- the shipped registry ----------------------------------------------------------------------
def test_shipped_registry_records_power_peg_retired_and_rlp_under_its_own_name(shipped):
    flag_7, rlp = shipped.get("flag_7"), shipped.get("rlp_enable")
    assert (flag_7.meaning, flag_7.status, flag_7.created.year) == ("power_peg", "retired", 2003)
    assert flag_7.meanings == ["power_peg"]
    assert (rlp.meaning, rlp.status, rlp.owner) == ("rlp", "active", "trading-platform")
    assert (rlp.created.year, rlp.created.month) == (2012, 7)
    assert rlp.expires > date.today()
    assert meaning_of(shipped, "flag_7") == "power_peg"
    assert meaning_of(shipped, "rlp_enable") == "rlp"
    assert meaning_of(shipped, "flag_8") is None


def test_shipped_8_0_0_fails_on_the_reused_flag_7(shipped, catalog):
    report = lint(shipped, catalog, release="8.0.0")
    assert not report.ok
    assert problems(report) == [("flag_7", "8.0.0", "reused")]
    assert report.problems[0].message == (
        "flag_7 in 8.0.0 means rlp, but flag_7 means power_peg since 2003 (a name is never reused)"
    )


def test_shipped_8_0_1_and_the_default_newest_release_pass(shipped, catalog):
    assert newest_release(catalog) == "8.0.1"
    assert lint(shipped, catalog, release="8.0.1").ok
    default = lint(shipped, catalog)
    assert (default.ok, default.release, default.flags) == (True, "8.0.1", 2)


def test_shipped_baseline_passes_so_a_guarded_rollback_to_it_is_possible(shipped, catalog):
    # 7.1.0 reads flag_7 as power_peg: older than 8.0.1, which retired the name.
    assert lint(shipped, catalog, release="7.1.0").ok


def test_check_release_refuses_8_0_0_in_one_line(shipped, catalog):
    with pytest.raises(FlagLintError) as info:
        check_release(shipped, catalog, "8.0.0")
    assert isinstance(info.value, KnightError)
    assert info.value.exit_code == 1
    assert str(info.value).startswith("release 8.0.0 fails the flag registry: flag_7 in 8.0.0")
    assert "\n" not in str(info.value)
    assert check_release(shipped, catalog, "8.0.1") is None


def test_report_serialises_to_json(shipped, catalog):
    doc = json.loads(json.dumps(lint(shipped, catalog, release="8.0.0").to_json()))
    assert doc["release"] == "8.0.0"
    assert doc["ok"] is False
    assert doc["flags"] == 2
    assert doc["problems"][0]["flag"] == "flag_7"
    assert doc["problems"][0]["rule"] == "reused"
    assert set(doc["problems"][0]) == {"flag", "release", "rule", "message"}


# -- each rule ---------------------------------------------------------------------------------
def test_an_expired_active_flag_fails_for_the_registry_and_for_a_release_reading_it(
    tmp_path, catalog
):
    reg = registry(tmp_path, FLAG_7, RLP_ENABLE.format(expires="2025-12-31"))
    default = lint(reg, catalog, today=TODAY)
    assert problems(default) == [("rlp_enable", None, "expired")]
    assert "expired on 2025-12-31 (owner trading-platform)" in default.problems[0].message
    assert problems(lint(reg, catalog, release="8.0.1", today=TODAY)) == [
        ("rlp_enable", "8.0.1", "expired")
    ]
    # 7.1.0 does not read rlp_enable, and a flag is good through its expiry day.
    assert lint(reg, catalog, release="7.1.0", today=TODAY).ok
    assert lint(reg, catalog, today=date(2025, 12, 31)).ok


def test_a_flag_a_release_reads_but_the_registry_does_not_know_is_unregistered(tmp_path, catalog):
    reg = registry(tmp_path, FLAG_7)
    report = lint(reg, catalog, release="8.0.1", today=TODAY)
    assert problems(report) == [("rlp_enable", "8.0.1", "unregistered")]
    assert report.problems[0].message.startswith("rlp_enable in 8.0.1 is not in flags.yaml")


def test_a_release_reading_a_retired_flag_after_its_retirement_fails(tmp_path):
    catalog_path = tmp_path / "releases.yaml"
    catalog_path.write_text(
        textwrap.dedent(
            """\
            baseline: "7.1.0"
            releases:
              "7.1.0": {strategies: [sor, power_peg], flags: {flag_7: power_peg}}
              "8.0.1": {strategies: [sor, rlp], flags: {rlp_enable: rlp}, retired: [flag_7]}
              "8.0.2": {strategies: [sor, power_peg], flags: {flag_7: power_peg}}
            """
        )
    )
    cat = load_catalog(catalog_path, S.router_source)
    reg = registry(tmp_path, FLAG_7, RLP_ENABLE.format(expires="2027-12-31"))
    report = lint(reg, cat, release="8.0.2", today=TODAY)
    assert problems(report) == [("flag_7", "8.0.2", "retired")]
    assert report.problems[0].message == "8.0.2 reads flag_7, retired in 8.0.1 (use a new name)"
    # Builds older than the retirement legitimately read the name (rollback targets).
    assert lint(reg, cat, release="7.1.0", today=TODAY).ok
    assert problems(lint(reg, cat, today=TODAY)) == [("flag_7", "8.0.2", "retired")]


def test_a_flag_retired_in_the_registry_but_by_no_release_fails_every_reader(tmp_path):
    catalog_path = tmp_path / "releases.yaml"
    catalog_path.write_text(
        'baseline: "7.1.0"\nreleases:\n'
        '  "7.1.0": {strategies: [sor, power_peg], flags: {flag_7: power_peg}}\n'
    )
    cat = load_catalog(catalog_path, S.router_source)
    report = lint(registry(tmp_path, FLAG_7), cat, release="7.1.0", today=TODAY)
    assert problems(report) == [("flag_7", "7.1.0", "retired")]
    assert report.problems[0].message == (
        "7.1.0 reads flag_7, which the registry retired (use a new name)"
    )


def test_a_name_whose_registry_history_changes_meaning_is_reused(tmp_path, catalog):
    reg = registry(
        tmp_path,
        """\
  flag_7:
    meaning: rlp
    owner: trading-platform
    created: 2003-03-03
    expires: null
    status: active
    history:
      - {date: 2003-03-03, meaning: power_peg, note: Power Peg.}
      - {date: 2012-07-02, meaning: rlp, note: Repurposed for RLP.}
""",
        RLP_ENABLE.format(expires="2027-12-31"),
    )
    default = lint(reg, catalog, today=TODAY)
    assert problems(default) == [("flag_7", None, "reused")]
    assert default.problems[0].message == (
        "flag_7 meant power_peg since 2003, then rlp since 2012 (a name is never reused)"
    )
    # A release reading the newest meaning is still reading a reused name.
    release_report = lint(reg, catalog, release="8.0.0", today=TODAY)
    assert problems(release_report) == [("flag_7", "8.0.0", "reused")]
    assert "flag_7 meant power_peg since 2003" in release_report.problems[0].message


def test_string_literals_in_the_router_source_must_be_registered(tmp_path, shipped, catalog):
    source = tmp_path / "smars"
    (source / "strategies").mkdir(parents=True)
    (source / "node.py").write_text(
        '"""Mentions flag_9 in a docstring, which is prose."""\n'
        "# flag_10 in a comment is prose too\n"
        "def route(flags):\n"
        '    """flag_11 here is a docstring."""\n'
        '    return flags.get("flag_12") or flags.get("rlp_enable")\n'
    )
    (source / "strategies" / "turbo.py").write_text('NAME = "turbo"\nFLAG = "turbo_enable"\n')
    refs = scan_source(source)
    assert [(r.name, r.path.name, r.line) for r in refs] == [
        ("flag_12", "node.py", 5),
        ("rlp_enable", "node.py", 5),
        ("turbo_enable", "turbo.py", 2),
    ]
    report = lint(shipped, catalog, release="8.0.1", source=source)
    assert problems(report) == [
        ("flag_12", None, "unregistered"),
        ("turbo_enable", None, "unregistered"),
    ]
    assert report.problems[0].message == (
        f"flag_12 is named at {tmp_path.name}/smars/node.py:5 but is not in flags.yaml"
    )


def test_the_shipped_router_source_names_no_flag(shipped):
    # The router reads its flags' names from release.json, never from a literal.
    assert any(S.router_source.rglob("*.py"))
    assert scan_source(S.router_source) == []


# -- malformed registries ----------------------------------------------------------------------
GOOD_7 = """\
flags:
  flag_7:
    meaning: power_peg
    owner: trading-platform
    created: 2003-03-03
    expires: null
    status: retired
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "expected a mapping with 'flags'"),
        ("flags: []\n", 1, "'flags' must map each flag name"),
        ("flags: {}\nowners: []\n", 2, "unknown key 'owners'"),
        (GOOD_7 + "    colour: red\n", 8, "flag flag_7: unknown key 'colour'"),
        (GOOD_7.replace("    owner: trading-platform\n", ""), 2, "missing 'owner'"),
        (GOOD_7.replace("power_peg", "Power Peg"), 3, "'Power Peg' is not a meaning"),
        (GOOD_7.replace("owner: trading-platform", "owner: 7"), 4, "owner: expected text"),
        (GOOD_7.replace("2003-03-03", "2003-03"), 5, "'2003-03' is not a date"),
        (GOOD_7.replace("2003-03-03", "2003-03-03 09:30:00"), 5, "is not a date"),
        (GOOD_7.replace("2003-03-03", "2003-02-30"), 5, "invalid date"),
        (GOOD_7.replace("expires: null", "expires: 2001-01-01"), 6, "expires before"),
        (GOOD_7.replace("expires: null", "expires: soon"), 6, "'soon' is not a date"),
        (GOOD_7.replace("status: retired", "status: dormant"), 7, "not one of active, retired"),
        (GOOD_7.replace("flag_7:", "Flag_7:"), 2, "'Flag_7' is not a valid flag name"),
        (GOOD_7.replace("flag_7:", "7:"), 2, "7 is not a valid flag name"),
        (GOOD_7 + GOOD_7.replace("flags:\n", ""), 8, "duplicate key 'flag_7'"),
        (
            GOOD_7.replace("  flag_7:\n", "  flag_7: power_peg\n").split("    meaning")[0],
            2,
            "expected a mapping",
        ),
        (GOOD_7 + "    history: {date: 2003-03-03}\n", 8, "history must be a list"),
        (
            GOOD_7 + "    history:\n      - {date: 2003-03-03, note: x}\n",
            9,
            "sets a meaning or a status",
        ),
        (GOOD_7 + "    history:\n      - {meaning: power_peg, note: x}\n", 9, "needs 'date'"),
        (
            GOOD_7 + "    history:\n      - {date: 2003-03-03, status: gone, note: x}\n",
            9,
            "history: status: 'gone'",
        ),
        (
            GOOD_7 + "    history:\n      - {date: 2003-03-03, status: retired, note: x, by: me}\n",
            9,
            "unknown key 'by'",
        ),
        (
            GOOD_7 + "    history:\n      - {date: 2001-01-01, meaning: power_peg, note: x}\n",
            9,
            "2001-01-01 is before 2003-03-03",
        ),
        (
            GOOD_7 + "    history:\n      - {date: 2003-03-03, meaning: rlp, note: x}\n",
            3,
            "meaning is power_peg, but its history ends on rlp",
        ),
        (
            GOOD_7 + "    history:\n      - {date: 2003-03-03, status: active, note: x}\n",
            7,
            "status is retired, but its history ends on active",
        ),
        ("flags: {\n", 2, "invalid YAML"),
    ],
)
def test_a_mistake_in_the_registry_names_the_file_and_line(tmp_path, text, line, message):
    path = registry_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert info.value.exit_code == 2
    assert (info.value.path, info.value.line) == (str(path), line)
    assert message in info.value.message
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_a_missing_registry_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_registry(tmp_path / "absent.yaml")
