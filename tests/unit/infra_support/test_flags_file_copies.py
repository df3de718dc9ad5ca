"""The flags file (`/etc/smars/flags.json`) has two readers on purpose: the router's
(`smars.flags.parse_flags`, which it runs by) and the testinfra suite's checker
(`tests/infra/flagsfile.py`, which must not import what it checks). They must accept and refuse
the same files."""

from __future__ import annotations

import json

import pytest
from flagsfile import flags_file_problems
from smars.flags import FlagError, parse_flags


def _file(flags) -> str:
    return json.dumps({"flags": flags})


CASES = {
    "valid": _file({"flag_7": {"value": True, "meaning": "rlp"}}),
    "no flags": _file({}),
    "blank meaning": _file({"flag_7": {"value": False, "meaning": "   "}}),
    "empty meaning": _file({"flag_7": {"value": False, "meaning": ""}}),
    "meaning of 64": _file({"flag_7": {"value": False, "meaning": "m" * 64}}),
    "meaning of 65": _file({"flag_7": {"value": False, "meaning": "m" * 65}}),
    "meaning not text": _file({"flag_7": {"value": False, "meaning": 7}}),
    "value as text": _file({"flag_7": {"value": "true", "meaning": "rlp"}}),
    "value as 1": _file({"flag_7": {"value": 1, "meaning": "rlp"}}),
    "upper-case name": _file({"Flag_7": {"value": True, "meaning": "rlp"}}),
    "name with a dash": _file({"flag-7": {"value": True, "meaning": "rlp"}}),
    "name of 65": _file({"f" * 65: {"value": True, "meaning": "rlp"}}),
    "extra key": _file({"flag_7": {"value": True, "meaning": "rlp", "owner": "x"}}),
    "missing meaning": _file({"flag_7": {"value": True}}),
    "another top key": json.dumps({"flags": {}, "more": 1}),
    "flags a list": json.dumps({"flags": []}),
    "not JSON": "{flags:",
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_router_and_the_checker_agree_on_every_flags_file(case):
    text = CASES[case]
    try:
        parse_flags(text.encode())
        router_accepts = True
    except FlagError:
        router_accepts = False
    checker_accepts = not flags_file_problems(text)
    assert router_accepts == checker_accepts, (case, router_accepts, checker_accepts)
    assert router_accepts == (case in ("valid", "no flags", "meaning of 64"))
