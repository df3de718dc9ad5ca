"""Each guard alone, on the real lab, against the failure it exists for.

The skipped-node experiment is the failure: 8.0.0 reaches seven nodes, the eighth keeps 7.1.0,
and flag_7 goes on for the RLP launch. Run with exactly one guard, each of atomic, fencing,
flags and risk must leave 0 excess shares at the venue; the monitor alone must detect the
runaway and kill the fleet within its bounds. Rollback safety is shown on the rollback that
spread the damage in 2012: refused, with the safe sequence, and nothing traded in excess.
"""

from __future__ import annotations

from helpers import NODE as OWN_NODE
from helpers import metric

from toolkit.deploy.operations import deploy, flag, rollback
from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import run_experiment
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadSpec, run_load

NODE = "smars-6"  # not smars-8: nothing may be tied to one node
SETS = {"node": NODE, "open_s": "3", "rate": "200"}


def skipped_node(lab: Lab, guards: GuardSet) -> dict:
    exp = load_experiment("skipped_node", SETS)
    return run_experiment(lab, exp, "guarded", guards).journal


def guard_events(journal: dict) -> list[str]:
    return [e["detail"] for e in journal["timeline"] if e["kind"] == "guard"]


def test_without_a_guard_the_skipped_node_runs_away(own_run):
    """The control: no guard at all is the unsafe mode, so the session's unsafe run (faulty
    node helpers.NODE) is the one read here."""
    journal = own_run("skipped_node", "unsafe", open_s="3").journal
    assert not any(journal["guards"].values())
    outcome = journal["outcome"]
    assert outcome["runaway_nodes"] == [OWN_NODE]
    assert outcome["excess_shares"] > 0
    assert outcome["fleet_end"][OWN_NODE] == "7.1.0"
    assert {r for n, r in outcome["fleet_end"].items() if n != OWN_NODE} == {"8.0.0"}


def test_the_atomic_deploy_alone_refuses_the_partial_fleet_and_the_launch_never_runs(lab: Lab):
    journal = skipped_node(lab, GuardSet.of(["atomic"]))
    assert journal["outcome"]["excess_shares"] == 0
    assert journal["outcome"]["runaway_nodes"] == []
    assert set(journal["outcome"]["fleet_end"].values()) == {"7.1.0"}
    (refusal,) = guard_events(journal)
    assert refusal.startswith("the atomic guard refused") and "partial fleet" in refusal
    assert not any(e["kind"] == "flag" for e in journal["timeline"])  # the launch was called off


def test_fencing_alone_keeps_the_skipped_node_from_trading(lab: Lab):
    journal = skipped_node(lab, GuardSet.of(["fencing"]))
    outcome = journal["outcome"]
    assert outcome["excess_shares"] == 0
    assert outcome["fleet_end"][NODE] == "7.1.0"  # the deploy did skip it: fencing acted
    version = lab.node_admin(NODE).get("/version")
    assert version["fleet"]["match"] is False
    assert version["fleet"]["manifest"]["release"] == "8.0.0"
    assert "fenced" in version["fleet"] and version["fleet"]["fenced"]
    assert metric(lab.node_admin(NODE).metrics(), "smars_fenced") == 1
    stats = lab.venue_admin().get("/stats")["nodes"]
    assert stats.get(NODE, {}).get("child_orders", 0) == 0
    assert all(stats[n]["executions"] > 0 for n in lab.settings.node_names if n != NODE)


def test_the_flag_registry_alone_refuses_the_release_that_reuses_flag_7(lab: Lab):
    journal = skipped_node(lab, GuardSet.of(["flags"]))
    assert journal["outcome"]["excess_shares"] == 0
    (refusal,) = guard_events(journal)
    assert refusal.startswith("the flags guard refused") and "flag_7" in refusal


def test_the_router_refuses_a_flag_whose_declared_meaning_its_code_does_not_implement(
    baseline: Lab,
):
    """The registry's run-time half: a 7.1.0 node handed `flag_7 means rlp` (pushed straight
    into its flags file, past every host-side check) does not run Power Peg."""
    baseline.set_guards(GuardSet.of(["flags"]))
    flags = baseline.baseline_flags()
    flags["flag_7"] = {"value": True, "meaning": "rlp"}
    baseline.set_flags(NODE, flags)
    version = baseline.node_admin(NODE).get("/version")
    assert version["release"] == "7.1.0"
    assert version["flags"]["flag_7"]["refused"] is True
    admin = baseline.node_admin(NODE)
    pegged = metric(admin.metrics(), "smars_child_orders_total", strategy="power_peg")
    result = run_load(baseline, LoadSpec(nodes=(NODE,), rate=200, duration_s=3, rlp_share=1.0))
    assert result.sent > 0 and result.unanswered == 0
    stats = baseline.venue_admin().get("/stats")
    assert stats["excess_shares"] == 0
    assert stats["nodes"][NODE]["executions"] > 0  # it traded, through sor
    text = admin.metrics()
    assert metric(text, "smars_child_orders_total", strategy="power_peg") == pegged  # none more


def test_the_risk_gate_alone_stops_power_peg_at_the_parent_quantity(lab: Lab):
    journal = skipped_node(lab, GuardSet.of(["risk"]))
    assert journal["outcome"]["excess_shares"] == 0
    version = lab.node_admin(NODE).get("/version")
    assert version["risk"]["enabled"] is True
    assert version["risk"]["refused"]["overfill"] > 0  # Power Peg ran, and the gate held it
    assert any(e["kind"] == "runaway" for e in journal["timeline"]) is False


def test_the_monitor_alone_detects_the_runaway_and_kills_the_fleet(lab: Lab):
    journal = skipped_node(lab, GuardSet.of(["monitor"]))
    outcome = journal["outcome"]
    assert outcome["detected_at_s"] is not None and outcome["killed_at_s"] is not None
    assert 0 <= outcome["detected_at_s"] <= outcome["killed_at_s"]
    assert outcome["runaway_nodes"] in ([], [NODE])  # reported, whatever got through
    alerts = [e for e in journal["timeline"] if e["kind"] == "alert"]
    assert any(a["node"] == NODE and "owner=" in a["detail"] for a in alerts)
    assert any(e["kind"] == "kill" for e in journal["timeline"])
    trading = {n.name: n.trading for n in lab.status().nodes}
    assert set(trading.values()) == {"killed"}, trading


def test_rollback_safety_alone_refuses_the_2012_rollback_and_gives_the_safe_sequence(
    baseline: Lab,
):
    guards = GuardSet.of(["rollback"])
    baseline.set_guards(guards)
    assert deploy(baseline, "8.0.0", guards=guards).status == "deployed"
    assert flag(baseline, "flag_7", True, "rlp", guards=guards).status == "done"
    result = rollback(baseline, to="7.1.0", guards=guards)
    assert result.status == "refused" and result.refused_by == "rollback"
    assert {n.release for n in baseline.status().nodes} == {"8.0.0"}  # nothing moved
    commands = [s["command"] for s in result.plan["sequence"]]
    assert commands[:3] == [
        "knight kill",
        "knight flags set flag_7 off",
        "knight rollback --to 7.1.0",
    ]
    load = run_load(baseline, LoadSpec(rate=200, duration_s=2, rlp_share=0.5))
    assert load.unanswered == 0
    assert baseline.venue_admin().get("/stats")["excess_shares"] == 0


def test_unsafe_rollback_with_the_flag_on_spreads_power_peg_to_every_node(baseline: Lab):
    """The failure the rollback guard exists for, shown once without it."""
    assert deploy(baseline, "8.0.0", unsafe=True).status == "deployed"
    assert flag(baseline, "flag_7", True, "rlp", guards=GuardSet()).status == "done"
    assert rollback(baseline, to="7.1.0", unsafe=True).status == "deployed"
    run_load(baseline, LoadSpec(rate=200, duration_s=2, rlp_share=0.5, drain_s=1))
    nodes = baseline.venue_admin().get("/stats")["nodes"]
    assert all(nodes[n]["excess_shares"] > 0 for n in baseline.settings.node_names)


def test_the_monitor_alone_kills_a_runaway_that_shows_no_flag_drift(baseline: Lab):
    """Power Peg switched on as what it is (declared power_peg): the only signal is the runaway
    itself, and the monitor must still see it and stop every node."""
    from toolkit.monitor import watch

    baseline.set_guards(GuardSet.of(["monitor"]))
    monitor = watch(baseline, acting=True, out_dir=baseline.settings.reports / "monitor" / "test")
    try:
        flags = baseline.baseline_flags()
        flags["flag_7"] = {"value": True, "meaning": "power_peg"}
        baseline.set_flags(NODE, flags)
        run_load(baseline, LoadSpec(nodes=(NODE,), rate=100, duration_s=2, rlp_share=1.0))
    finally:
        seen = monitor.stop()
    alert = seen.first_alert("kill")
    assert alert is not None and alert.node == NODE
    assert alert.rule in ("overfill", "order_rate_anomaly")
    assert (alert.owner, alert.severity) == ("trading-risk", "critical")
    (kill,) = seen.kills
    assert kill.ok and set(kill.nodes) == set(baseline.settings.node_names)
    assert {n.trading for n in baseline.status().nodes} == {"killed"}
    stats = baseline.venue_admin().get("/stats")
    assert stats["nodes"][NODE]["first_excess_at"] is not None  # it did run away before the kill
    executions = baseline.executions()
    assert executions
    assert all(r["t"] <= kill.done + 0.5 for r in executions)  # and stopped
