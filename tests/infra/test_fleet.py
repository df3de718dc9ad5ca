"""The fleet as one: every node given answers, and all run the same release, tree hash, config
hash and flags (and the expected release, with --expect-release). One test, so its failure
names every deviating node at once."""

from __future__ import annotations

from fleet import Fleet, fleet_problems


def test_every_node_answers_and_runs_the_same_release_tree_config_and_flags(
    fleet: Fleet, expect_release: str | None
):
    problems = fleet_problems(fleet.identities, fleet.silent, expect_release)
    assert not problems, "\n  ".join([f"fleet not uniform ({fleet.summary}):", *problems])
    assert len(fleet.identities) == fleet.size, fleet.summary
