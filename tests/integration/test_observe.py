"""The Prometheus path of the monitor on a real lab: a real Prometheus scrapes the routers and
evaluates monitor/prometheus/rules.yml, a real Alertmanager routes the critical alert to the
lab's webhook receiver, and knight throws the kill switch on every node."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import OBSERVE_IMAGE

from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import run_experiment
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.observe import CONF, target_entries, write_targets
from toolkit.monitor import watch_prometheus

#: Generous: a scrape and an evaluation a second, on a machine that may be ten times slower.
DEADLINE_S = 120.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {timeout:.0f}s: {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def observed(lab: Lab) -> Iterator[Lab]:
    """The session's lab with its observe containers (the observe image built when missing),
    for this module only: the tests after it keep a lab nothing scrapes every second. Its image
    was started building when the tests were collected (`OBSERVE_IMAGE`)."""
    OBSERVE_IMAGE.wait()
    lab.up(observe=True)
    assert lab.observed
    yield lab
    assert lab.observe_down() == 3
    assert not lab.observed


def test_the_observe_containers_are_the_labs_unprivileged_and_on_loopback_only(observed: Lab):
    for role in ("prometheus", "alertmanager", "receiver"):
        container = observed.observe_container(role)
        container.reload()
        assert container.labels["knight.lab"] == observed.settings.lab
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], role
        assert host["SecurityOpt"] == ["no-new-privileges:true"], role
        assert host["Memory"] > 0 and host["PidsLimit"] > 0, role
        published = container.attrs["NetworkSettings"]["Ports"].values()
        assert [b["HostIp"] for bindings in published for b in bindings] == ["127.0.0.1"], role
        code, out = observed.engine.exec(container, ["ps", "-o", "uid=,comm=", "--ppid", "1"])
        assert code == 0 and out.split()[0] == "10001", (role, out)


def router_targets(lab: Lab) -> set[str]:
    active = lab.observe_client("prometheus").get("/api/v1/targets?state=active")
    return {
        t["labels"]["instance"]
        for t in active["data"]["activeTargets"]
        if t["labels"].get("job") == "smars"
    }


def test_prometheus_follows_the_nodes_the_toolkit_writes_as_targets(observed: Lab):
    nodes = observed.settings.node_names
    everyone = {f"{n}:{observed.settings.admin_port}" for n in nodes}
    assert wait_for("every router a target", lambda: router_targets(observed) == everyone)
    # The last node leaves the fleet: Prometheus stops scraping it, without a restart.
    observed.engine.put(
        observed.observe_container("prometheus"),
        CONF,
        target_entries(observed.settings, nodes[:-1]),
        observed.settings.deploy_uid,
    )
    assert wait_for(
        "the last node dropped",
        lambda: (
            router_targets(observed) == everyone - {f"{nodes[-1]}:{observed.settings.admin_port}"}
        ),
    )
    assert write_targets(observed) == nodes
    assert wait_for("the last node back", lambda: router_targets(observed) == everyone)


def test_an_alert_from_prometheus_throws_the_kill_switch_on_every_node(
    observed: Lab, tmp_path: Path
):
    observed.reset(GuardSet())
    assert {n.trading for n in observed.status().nodes} == {"active"}
    receiver = watch_prometheus(observed, acting=True, out_dir=tmp_path)
    try:
        # flag_7 declared as RLP on a node whose code (7.1.0) runs Power Peg for it: the
        # flag_meaning_drift rule, critical, fires in Prometheus alone (knight's own monitor
        # is not running).
        flags = observed.baseline_flags()
        flags["flag_7"] = {"value": True, "meaning": "rlp"}
        observed.set_flags("smars-3", flags)
        kill = wait_for("the kill switch thrown through Alertmanager", lambda: receiver.kills)[0]
    finally:
        result = receiver.stop()
    assert kill.trigger == ["flag_meaning_drift@smars-3"]
    assert kill.ok and sorted(kill.nodes) == sorted(observed.settings.node_names)
    # Every node's admin API says so.
    assert {n.name: n.trading for n in observed.status().nodes} == dict.fromkeys(
        observed.settings.node_names, "killed"
    )
    alert = result.first_alert("kill")
    assert alert is not None
    assert (alert.rule, alert.node, alert.owner, alert.severity) == (
        "flag_meaning_drift",
        "smars-3",
        "release-engineering",
        "critical",
    )
    assert alert.runbook == "docs/runbooks/flag_meaning_drift.md"
    lines = (tmp_path / "prometheus-alerts.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds.count("alert") == len(result.alerts) >= 1
    assert kinds.count("kill") == len(result.kills) >= 1


#: flag_7 declared RLP over 7.1.0's code (Power Peg for it): flag_meaning_drift, critical, on
#: every node, with no deploy in the way; the wait leaves the 1 s scrape and evaluation ten
#: times and more the time they take on a busy machine.
DRIFT_EXPERIMENT = """
title: The flag declared for code the fleet does not run
description: flag_7 on, declared rlp, over 7.1.0 (Power Peg).
steady_state:
  - probe: nodes_healthy
method:
  - flag: {name: flag_7, value: on, meaning: rlp}
    label: flag_7 on, declared rlp
  - wait: {seconds: 40}
    label: the monitor watches
rollbacks:
  - kill: {}
    label: kill switch
  - flag: {name: flag_7, value: off}
    label: flag_7 off
"""


def test_an_experiment_watched_through_prometheus_journals_the_alerts_owner_and_runbook(
    observed: Lab, tmp_path: Path
):
    path = tmp_path / "drift.yml"
    path.write_text(DRIFT_EXPERIMENT)
    result = run_experiment(
        observed,
        load_experiment(str(path), {}),
        "unsafe",
        GuardSet.of(["monitor"]),
        tmp_path / "journal.json",
        monitors=("prometheus",),
    )
    timeline = result.journal["timeline"]
    alerts = [e for e in timeline if e["kind"] == "alert"]
    kills = [e for e in timeline if e["kind"] == "kill"]
    drift = [e for e in alerts if "flag_meaning_drift" in e["detail"]]
    assert drift, [e["detail"] for e in timeline]
    assert drift[0]["detail"].startswith("via prometheus: flag_meaning_drift critical")
    assert "owner=release-engineering" in drift[0]["detail"]
    assert "runbook=docs/runbooks/flag_meaning_drift.md" in drift[0]["detail"]
    assert kills and kills[0]["detail"].startswith("via prometheus: kill switch on every node")
    assert "(trigger flag_meaning_drift@smars-" in kills[0]["detail"]
    assert "ok=True" in kills[0]["detail"]
    # The alert's kill switch, before the run's own rollbacks threw it again.
    rollback_kill = next(e for e in timeline if e["kind"] == "rollback_kill")
    assert kills[0]["t"] < rollback_kill["t"]
    assert result.journal["outcome"]["detected_at_s"] is not None
    assert result.journal["outcome"]["killed_at_s"] is not None
    # Prometheus alone watched: knight's own monitor raised nothing.
    assert all(e["detail"].startswith("via prometheus: ") for e in alerts + kills)
