"""The fleet report: every node that differs from the majority, or from the expected release, is
named with how it differs; a uniform fleet has nothing to report."""

from __future__ import annotations

from fleet import NodeIdentity, fleet_problems, node_sort_key

NEW = ("8.0.0", "de449393c7f3ba367c65228c807784cca54e0b42aaaaaaaaaaaaaaaaaaaaaaaa")
OLD = ("7.1.0", "a94784b3a18e6752c5f05597d41e5cc089373241627b0bfb2ab6c172dc7b0694")
CONFIG = "311ae937d9213f8f0ca19145ae9bf17dd2fee31c1af2e743177536c62e8c74e9"
FLAG_OFF = {"flag_7": (False, "power_peg")}


def node(n: int, build=NEW, config=CONFIG, flags=None) -> NodeIdentity:
    return NodeIdentity(
        node=f"smars-{n}",
        release=build[0],
        tree=build[1],
        config_hash=config,
        flags=FLAG_OFF if flags is None else flags,
    )


def fleet(**deviant) -> list[NodeIdentity]:
    """Eight nodes on NEW; `deviant` maps a node number (as n8=...) to its NodeIdentity."""
    return [deviant.get(f"n{n}", node(n)) for n in range(1, 9)]


def test_a_uniform_fleet_has_no_problems():
    assert fleet_problems(fleet()) == []


def test_a_node_on_another_release_is_named_with_both_builds():
    assert fleet_problems(fleet(n8=node(8, build=OLD))) == [
        "smars-8 runs 7.1.0 (tree a94784b3…) while 7 nodes run 8.0.0 (tree de449393…)"
    ]


def test_the_same_release_with_another_tree_is_a_deviation():
    patched = ("8.0.0", "0badc0de" + "0" * 56)
    assert fleet_problems(fleet(n3=node(3, build=patched))) == [
        "smars-3 runs 8.0.0 (tree 0badc0de…) while 7 nodes run 8.0.0 (tree de449393…)"
    ]


def test_a_flag_switched_on_one_node_is_named_with_its_meaning():
    on = {"flag_7": (True, "power_peg")}
    assert fleet_problems(fleet(n8=node(8, flags=on))) == [
        "smars-8 has flag_7=on (power_peg) while 7 nodes have flag_7=off (power_peg)"
    ]


def test_a_flag_with_another_meaning_is_a_deviation():
    rlp = {"flag_7": (False, "rlp")}
    assert fleet_problems(fleet(n2=node(2, flags=rlp))) == [
        "smars-2 has flag_7=off (rlp) while 7 nodes have flag_7=off (power_peg)"
    ]


def test_a_flag_missing_on_one_node_is_named():
    extra = {**FLAG_OFF, "flag_9": (False, "rlp")}
    nodes = [node(n, flags=extra) for n in range(1, 8)] + [node(8)]
    assert fleet_problems(nodes) == ["smars-8 has no flag_9 while 7 nodes have flag_9=off (rlp)"]


def test_a_node_with_another_config_hash_is_named():
    assert fleet_problems(fleet(n5=node(5, config="f" * 64))) == [
        "smars-5 has config ffffffff… while 7 nodes have config 311ae937…"
    ]


def test_every_deviating_node_is_named_at_once_in_node_order():
    problems = fleet_problems(
        fleet(n8=node(8, build=OLD), n2=node(2, build=OLD), n4=node(4, config="0" * 64))
    )
    assert problems == [
        "smars-2 runs 7.1.0 (tree a94784b3…) while 6 nodes run 8.0.0 (tree de449393…)",
        "smars-8 runs 7.1.0 (tree a94784b3…) while 6 nodes run 8.0.0 (tree de449393…)",
        "smars-4 has config 00000000… while 7 nodes have config 311ae937…",
    ]


def test_a_node_that_did_not_answer_is_named_with_the_reason():
    answered = fleet()[:7]
    assert fleet_problems(answered, silent={"smars-8": "connection refused"}) == [
        "smars-8 did not answer: connection refused"
    ]


def test_with_an_expected_release_every_node_not_running_it_is_named_once():
    problems = fleet_problems(fleet(n8=node(8, build=OLD)), expect_release="8.0.0")
    assert problems == ["smars-8 runs 7.1.0 (tree a94784b3…), expected 8.0.0"]


def test_with_an_expected_release_a_uniform_fleet_on_another_release_fails():
    problems = fleet_problems(fleet(), expect_release="8.0.1")
    assert len(problems) == 8
    assert problems[0] == "smars-1 runs 8.0.0 (tree de449393…), expected 8.0.1"


def test_with_no_majority_every_group_is_listed():
    nodes = [node(n) for n in range(1, 5)] + [node(n, build=OLD) for n in range(5, 9)]
    assert fleet_problems(nodes) == [
        "no majority: 4 nodes run 8.0.0 (tree de449393…) (smars-1, smars-2, smars-3, smars-4); "
        "4 nodes run 7.1.0 (tree a94784b3…) (smars-5, smars-6, smars-7, smars-8)"
    ]


def test_two_hosts_answering_as_one_node_is_a_problem():
    nodes = [*fleet(), node(1)]
    assert fleet_problems(nodes) == ["smars-1 answered for 2 hosts"]


def test_identity_is_read_from_the_admin_api_version():
    identity = NodeIdentity.from_version(
        "smars-1",
        {
            "node": "smars-1",
            "release": "7.1.0",
            "tree": OLD[1],
            "config_hash": CONFIG,
            "flags": {"flag_7": {"value": True, "meaning": "rlp", "code_meaning": "power_peg"}},
            "pid": 7,
        },
    )
    assert identity == NodeIdentity("smars-1", "7.1.0", OLD[1], CONFIG, {"flag_7": (True, "rlp")})


def test_nodes_sort_by_number_not_text():
    names = ["smars-10", "smars-2", "smars-1"]
    assert sorted(names, key=node_sort_key) == ["smars-1", "smars-2", "smars-10"]
