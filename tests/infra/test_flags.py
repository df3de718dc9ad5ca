"""Each node's flags file has the documented shape, the router runs exactly those flags, and
no flag that is on means something else to the running code."""

from __future__ import annotations

import json
from typing import Any

from flagsfile import flags_file_problems
from testinfra.host import Host

FLAGS_FILE = "/etc/smars/flags.json"


def test_flags_file_is_valid_json_of_the_documented_shape(host: Host):
    flags_file = host.file(FLAGS_FILE)
    assert flags_file.is_file, f"{FLAGS_FILE} is missing"
    assert flags_file_problems(flags_file.content_string) == []


def test_router_reports_no_flags_error(version: dict[str, Any]):
    assert version["flags_error"] is None


def test_router_runs_the_flags_of_the_file(host: Host, version: dict[str, Any]):
    # A file changed without a reload is a flag change nobody has applied yet.
    in_file = json.loads(host.file(FLAGS_FILE).content_string)["flags"]
    running = {
        name: {"value": f["value"], "meaning": f["meaning"]} for name, f in version["flags"].items()
    }
    assert running == in_file


def test_every_flag_that_is_on_means_in_the_running_code_what_it_declares(
    version: dict[str, Any],
):
    # The 2012 failure: flag_7 switched on for RLP woke Power Peg on the node with the old code.
    mismatched = {
        name: f"declared {f['meaning']!r}, the running code reads it as {f.get('code_meaning')!r}"
        for name, f in version["flags"].items()
        if f["value"] and f.get("code_meaning") != f["meaning"]
    }
    assert mismatched == {}
