"""Each node works from the expected release, and the code it runs is the code on its disk."""

from __future__ import annotations

import json
from typing import Any

import probes
from testinfra.host import Host

CURRENT = "/opt/smars/current"
RELEASES = "/opt/smars/releases"


def test_current_points_at_the_expected_release(host: Host, expected_release: str):
    current = host.file(CURRENT)
    assert current.is_symlink, f"{CURRENT} is not a symlink"
    assert current.linked_to == f"{RELEASES}/{expected_release}"


def test_admin_api_reports_the_expected_release(version: dict[str, Any], expected_release: str):
    assert version["release"] == expected_release


def test_release_manifest_in_the_tree_names_the_same_release(host: Host, expected_release: str):
    manifest = json.loads(host.file(f"{RELEASES}/{expected_release}/release.json").content_string)
    assert manifest["version"] == expected_release


def test_running_tree_hash_is_the_hash_of_the_release_files(
    host: Host, version: dict[str, Any], expected_release: str
):
    on_disk = probes.decode(host.run(probes.tree_hash(f"{RELEASES}/{expected_release}")))
    assert on_disk["files"] > 0
    assert version["tree"] == on_disk["tree"], (
        f"the router runs tree {version['tree']}, the files of {on_disk['root']} hash to "
        f"{on_disk['tree']}"
    )
