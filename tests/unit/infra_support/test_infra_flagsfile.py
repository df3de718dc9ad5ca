"""The flags file check accepts the documented shape and names every deviation from it."""

from __future__ import annotations

import json

import pytest
from flagsfile import flags_file_problems


def doc(**flags) -> str:
    return json.dumps({"flags": flags})


def test_the_baseline_flags_file_is_valid():
    assert flags_file_problems(doc(flag_7={"value": False, "meaning": "power_peg"})) == []


def test_no_flags_at_all_is_valid():
    assert flags_file_problems(doc()) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not JSON"),
        ("[]", 'expected exactly one key, "flags"'),
        ('{"flags": {}, "extra": 1}', 'expected exactly one key, "flags"'),
        ('{"flags": []}', '"flags": expected an object'),
    ],
)
def test_a_file_not_of_the_shape_is_refused(text: str, problem: str):
    problems = flags_file_problems(text)
    assert len(problems) == 1
    assert problems[0].startswith(problem)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"value": "true", "meaning": "rlp"}, "flag_7.value: expected true or false, got 'true'"),
        ({"value": 1, "meaning": "rlp"}, "flag_7.value: expected true or false, got 1"),
        ({"value": False, "meaning": ""}, "flag_7.meaning: expected a non-empty string"),
        ({"value": False, "meaning": "  "}, "flag_7.meaning: expected a non-empty string"),
        ({"value": False, "meaning": None}, "flag_7.meaning: expected a non-empty string"),
        ({"value": False}, "flag_7: expected exactly the keys value and meaning"),
        ({"value": False, "meaning": "rlp", "owner": "x"}, "flag_7: expected exactly the keys"),
    ],
)
def test_every_flag_needs_a_bool_value_and_a_meaning(entry: dict, problem: str):
    problems = flags_file_problems(doc(flag_7=entry))
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_every_bad_flag_is_named():
    problems = flags_file_problems(
        doc(
            flag_7={"value": True, "meaning": "rlp"},
            flag_8={"value": None, "meaning": "x"},
            Flag9={"value": False, "meaning": "y"},
        )
    )
    assert problems == [
        "flag_8.value: expected true or false, got None",
        "'Flag9': a flag name is [a-z][a-z0-9_]{0,63}",
    ]
