"""What each container of the lab is: its user, its limits, its volumes, and a digest that changes
when it would be created otherwise (so `lab up` recreates it)."""

from __future__ import annotations

from dataclasses import replace

from lab_fakes import tiny_artifact

from toolkit.guards.sets import GuardSet
from toolkit.lab.specs import (
    ARTIFACTS_RESOURCES,
    CLIENT_RESOURCES,
    ROUTER_RESOURCES,
    VENUE_RESOURCES,
    lab_specs,
    spec_digest,
)
from toolkit.lab.tokens import LabTokens
from toolkit.settings import Settings

GIB = 2**30


def specs(tmp_path, nodes: int = 3, secret: str = "5" * 64) -> dict:
    made = lab_specs(
        Settings(lab="t", nodes=nodes),
        tiny_artifact(tmp_path),
        tokens=LabTokens(secret),
        flags={},
        guards=GuardSet(),
    )
    return {s.hostname: s for s in made}


def test_every_container_runs_as_the_router_user_within_its_limits(tmp_path):
    found = specs(tmp_path)
    assert {s.user for s in found.values()} == {"10001:10001"}
    assert found["smars-1"].resources == ROUTER_RESOURCES
    assert found["venue"].resources == VENUE_RESOURCES
    assert found["client"].resources == CLIENT_RESOURCES
    assert found["artifacts"].resources == ARTIFACTS_RESOURCES


def test_the_largest_lab_fits_in_24_gib_with_room_for_the_host(tmp_path):
    found = specs(tmp_path, nodes=32)
    assert sum(s.resources.memory for s in found.values()) <= 16 * GIB
    # the venue and the load generator hold a whole run in memory: more than a router
    assert VENUE_RESOURCES.memory > ROUTER_RESOURCES.memory
    assert CLIENT_RESOURCES.memory > ROUTER_RESOURCES.memory


def test_a_router_s_release_trees_are_a_volume_of_its_own(tmp_path):
    found = specs(tmp_path)
    assert found["smars-2"].volumes == ("/opt/smars/releases",)
    assert found["venue"].volumes == ()


def test_the_digest_changes_with_what_a_container_is_made_from(tmp_path):
    node = specs(tmp_path)["smars-1"]
    same = spec_digest(node, "sha256:a")
    assert spec_digest(specs(tmp_path)["smars-1"], "sha256:a") == same
    assert spec_digest(node, "sha256:b") != same  # a new image
    assert spec_digest(specs(tmp_path, secret="6" * 64)["smars-1"], "sha256:a") != same  # tokens
    bigger = replace(node, resources=replace(node.resources, memory=node.resources.memory * 2))
    assert spec_digest(bigger, "sha256:a") != same
