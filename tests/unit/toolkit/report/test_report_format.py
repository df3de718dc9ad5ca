"""Numbers in the report are written for people."""

import pytest

from toolkit.report.format import fmt_int, fmt_seconds, fmt_usd


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (1234567, "1,234,567"), (397_000_000, "397,000,000"), (12.6, "13"), (None, "—")],
)
def test_counts_have_thousands_separators(value, text):
    assert fmt_int(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0"),
        (950, "$950"),
        (1_500, "$1.5K"),
        (1_234_567, "$1.2M"),
        (12_345_678, "$12.3M"),
        (460_000_000, "$460M"),
        (3_500_000_000, "$3.5B"),
        (-2_000, "-$2K"),
        (None, "—"),
    ],
)
def test_money_is_short(value, text):
    assert fmt_usd(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.34, "2.3 s"),
        (59.9, "59.9 s"),
        (75, "1 min 15 s"),
        (2700, "45 min"),
        (3900, "1 h 5 min"),
        (None, "never"),
    ],
)
def test_durations_read_as_time(value, text):
    assert fmt_seconds(value) == text
