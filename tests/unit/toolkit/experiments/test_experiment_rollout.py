"""The order a deploy step reaches the nodes: rollout order, and the nodes a step switches."""

from pathlib import Path

from toolkit.experiments.loader import load_experiment
from toolkit.experiments.rollout import deploy_targets, rollout_order

FLEET = tuple(f"smars-{i}" for i in range(1, 9))


def test_rollout_order_turns_the_fleet_to_start_or_end_at_a_node():
    assert rollout_order(FLEET, start_at="smars-6")[:4] == [
        "smars-6",
        "smars-7",
        "smars-8",
        "smars-1",
    ]
    assert rollout_order(FLEET, end_at="smars-3")[-2:] == ["smars-2", "smars-3"]
    assert rollout_order(FLEET, end_at="smars-3")[0] == "smars-4"
    assert rollout_order(FLEET, targets=["smars-7", "smars-2"], start_at="smars-5") == [
        "smars-7",
        "smars-2",
    ]


def test_deploy_targets_pass_over_nodes_already_on_the_release(tmp_path: Path):
    path = tmp_path / "staged.yml"
    path.write_text(
        "title: staged\n"
        "method:\n"
        "  - deploy: {release: '8.0.0', skip: [smars-2], stop_after: 3}\n"
        "  - deploy: {release: '8.0.0', skip: [smars-2], stop_after: 3}\n"
    )
    exp = load_experiment(path, {}, fleet=FLEET, releases=("7.1.0", "8.0.0"))
    running = dict.fromkeys(FLEET, "7.1.0")
    first = deploy_targets(exp.method[0].args, FLEET, running)
    assert first == ["smars-1", "smars-3", "smars-4"]
    running.update(dict.fromkeys(first, "8.0.0"))
    assert deploy_targets(exp.method[1].args, FLEET, running) == ["smars-5", "smars-6", "smars-7"]
    assert exp.not_deployed() == ("smars-2", "smars-8")
