"""The shipped experiments: they load, they re-enact the incident as experiments/README.md tells it, and `--set node=...`
reaches everywhere (nothing in them is tied to smars-8 but the default)."""

import json
from pathlib import Path

import pytest

from toolkit.experiments.activities import ACTIVITIES
from toolkit.experiments.loader import list_experiments, load_experiment
from toolkit.settings import Settings

S = Settings()
FLEET = tuple(f"smars-{i}" for i in range(1, 9))
SHIPPED = ("knightmare", "reused_flag", "rollback", "skipped_node")


def load(exp_id: str, **sets: str):
    return load_experiment(exp_id, sets, fleet=FLEET, directory=S.root / "experiments")


def test_list_finds_the_four_experiments_all_loading():
    infos = list_experiments(S.root / "experiments", fleet=FLEET)
    assert [i.id for i in infos] == list(SHIPPED)
    assert [i.error for i in infos] == [None] * 4
    assert all(i.title for i in infos)
    assert all(i.parameters["node"] == "smars-8" for i in infos)


@pytest.mark.parametrize("exp_id", SHIPPED)
def test_set_node_reaches_every_step_label_and_text(exp_id):
    exp = load(exp_id, node="smars-3")
    doc = exp.to_json()
    # The expectations may name smars-8 legitimately (runaway_nodes: all); the steps may not.
    text = json.dumps([doc["title"], doc["description"], doc["method"], doc["rollbacks"]])
    assert "smars-8" not in text
    assert "smars-3" in text


@pytest.mark.parametrize("exp_id", SHIPPED)
def test_every_run_ends_with_the_kill_switch_and_flag_off(exp_id):
    exp = load(exp_id)
    assert [a.name for a in exp.rollbacks] == ["kill", "flag"]
    assert exp.rollbacks[1].args["value"] is False
    assert [p.name for p in exp.steady_state] == [
        "fleet_uniform",
        "nodes_healthy",
        "excess_shares",
        "orders_lost",
    ]
    guarded = exp.expectations("guarded")
    assert guarded.get("excess_shares") == 0
    assert guarded.get("runaway_nodes") == ()
    assert exp.expectations("unsafe").get("deviated") is True


@pytest.mark.parametrize("exp_id", SHIPPED)
def test_a_refused_deploy_stops_the_launch(exp_id):
    exp = load(exp_id)
    deploys = [a for a in exp.method if a.name == "deploy"]
    assert deploys and all(a.on_refused == "stop" for a in deploys)
    names = [a.name for a in exp.method]
    assert names.index("flag") > max(i for i, n in enumerate(names) if n == "deploy")


def test_skipped_node_runs_away_on_exactly_the_skipped_node():
    exp = load("skipped_node", node="smars-3")
    assert exp.method[0].args["skip"] == ("smars-3",)
    assert exp.plan()["smars-3"] is None
    assert {exp.plan()[n] for n in FLEET if n != "smars-3"} == {"8.0.0"}
    assert exp.expectations("unsafe").get("runaway_nodes") == ("smars-3",)
    assert [a.name for a in exp.method] == ["deploy", "flag", "open", "wait"]


def test_reused_flag_leaves_the_nodes_after_the_first_four_in_rollout_order():
    exp = load("reused_flag")
    assert exp.expectations("unsafe").get("runaway_nodes") == (
        "smars-5",
        "smars-6",
        "smars-7",
        "smars-8",
    )
    turned = load("reused_flag", node="smars-3", done="2")
    assert turned.method[0].args["stop_after"] == 2
    # Rollout order smars-4, 5, ..., 8, 1, 2, 3: two switched, the other six still on 7.1.0.
    assert turned.not_deployed() == (
        "smars-1",
        "smars-2",
        "smars-3",
        "smars-6",
        "smars-7",
        "smars-8",
    )


def test_rollback_rolls_back_the_seven_good_nodes_with_the_flag_on():
    exp = load("rollback")
    names = [a.name for a in exp.method]
    assert names.index("flag") < names.index("rollback")
    assert "flag" not in names[names.index("rollback") :]
    rollback = exp.method[names.index("rollback")]
    assert rollback.args["skip"] == ("smars-8",)
    assert rollback.on_refused == "continue"
    assert set(exp.plan().values()) == {"7.1.0", None}
    assert exp.expectations("unsafe").get("runaway_nodes") == FLEET
    assert exp.expectations("unsafe").get("fleet_end") == "7.1.0"


def test_knightmare_tells_the_2012_story_in_order():
    exp = load("knightmare", alerts="5")
    kinds = [a.name for a in exp.method]
    days = [a.args["label"] for a in exp.method if a.name == "day"]
    assert days[:3] == ["Fri 27 Jul 2012", "Mon 30 Jul 2012", "Tue 31 Jul 2012"]
    assert kinds.count("deploy") == 3
    order = [kinds.index(k) for k in ("deploy", "alerts", "flag", "open", "rollback", "kill")]
    assert order == sorted(order)
    assert exp.method[kinds.index("alerts")].args["count"] == 5
    # Three staged hand copies of 3, 2 and the rest: seven nodes on 8.0.0, smars-8 never reached.
    assert exp.not_deployed() == ("smars-8",)
    waits = sum(a.args["seconds"] for a in exp.method if a.name == "wait")
    assert 10 <= waits <= 40


def test_the_readme_documents_every_activity():
    readme = (S.root / "experiments" / "README.md").read_text()
    for name in ACTIVITIES:
        assert f"| `{name}` |" in readme


def test_shipped_files_are_commented():
    for exp_id in SHIPPED:
        text = Path(S.root / "experiments" / f"{exp_id}.yml").read_text()
        assert text.startswith("#")
