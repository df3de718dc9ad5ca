"""The router-enforced guards are listed twice on purpose (docs/protocol.md, "Copies kept on
purpose"): the toolkit writes each node's guards file (toolkit/guards/sets.py) and the router
reads it (router_image/smars/guards.py), and the router does not import the toolkit. The two
lists, and the file one writes and the other reads, must agree."""

from __future__ import annotations

import json
from dataclasses import fields

import smars.guards as router

from toolkit.guards.sets import GUARDS, ROUTER_GUARDS, GuardSet


def test_the_toolkit_and_the_router_name_the_same_router_guards_in_the_same_order():
    assert ROUTER_GUARDS == router.ROUTER_GUARDS
    assert tuple(f.name for f in fields(router.Guards)) == router.ROUTER_GUARDS


def test_every_router_guard_is_one_of_the_toolkit_guards():
    assert set(ROUTER_GUARDS) <= set(GUARDS)


def test_the_guards_file_the_toolkit_writes_is_the_one_the_router_reads():
    for guards in (GuardSet(), GuardSet.all(), GuardSet.of(["fencing", "risk", "monitor"])):
        written = json.dumps(guards.router_file()).encode()
        assert router.parse_guards(written).to_json() == guards.router_file()
