"""The router on real containers: orders flow to every node and the venue, Power Peg overfills on
the old build when flag_7 is on, RLP on the new build never does, and hostile input is refused."""

from __future__ import annotations

import json
import threading
import time

from helpers import exchange, metric

from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadSpec, run_load


def test_orders_reach_every_router_and_the_venue_counts_fills_per_node(baseline: Lab):
    result = run_load(baseline, LoadSpec(rate=400, duration_s=3, qty=300))
    assert result.accounted
    assert result.unanswered == 0 and result.rejected == 0
    assert result.filled == result.sent > 1000
    assert result.overfilled == 0 and result.excess_shares == 0
    for node in baseline.settings.node_names:
        assert result.per_target[f"{node}:7001"]["filled"] > 100
    stats = baseline.venue_admin().get("/stats")
    assert sorted(stats["nodes"]) == baseline.settings.node_names
    for node, row in stats["nodes"].items():
        assert row["executions"] > 0, node
        assert row["releases"] == {"7.1.0": row["executions"]}
        assert row["excess_shares"] == 0
    # 300 shares each, sliced by 100: three child orders and executions per parent
    assert stats["executions"] == 3 * result.sent
    assert stats["shares"] == 300 * result.sent
    assert stats["excess_shares"] == 0


def test_flag_7_off_never_overfills_even_for_rlp_orders(baseline: Lab):
    result = run_load(baseline, LoadSpec(rate=200, duration_s=2, rlp_share=1.0))
    assert result.filled == result.sent and result.overfilled == 0
    assert baseline.venue_admin().get("/stats")["excess_shares"] == 0


def _flag_7_on(lab: Lab, node: str) -> dict:
    # The 2012 launch: flag_7 switched on with its new meaning.
    return lab.set_flags(node, {"flag_7": {"value": True, "meaning": "rlp"}})


def test_old_release_with_flag_7_on_runs_power_peg_and_overfills_while_orders_flow(baseline: Lab):
    node = "smars-3"
    _flag_7_on(baseline, node)
    venue = baseline.venue_admin()
    samples: list[int] = []
    load = threading.Thread(
        target=run_load,
        args=(baseline, LoadSpec(nodes=(node,), rate=40, duration_s=4, rlp_share=1.0, drain_s=1)),
    )
    load.start()
    for _ in range(3):
        time.sleep(1.2)
        samples.append(venue.get("/stats")["nodes"][node]["excess_shares"])
    load.join()
    assert samples[0] > 0
    assert samples[0] < samples[1] < samples[2], samples
    executions = venue.get("/executions?since=0&limit=500")
    fields = executions["fields"]
    rows = [dict(zip(fields, row, strict=True)) for row in executions["executions"]]
    assert {r["node"] for r in rows} == {node}
    assert {r["release"] for r in rows} == {"7.1.0"}
    assert {r["strategy"] for r in rows} == {"power_peg"}
    baseline.node_admin(node).post("/kill")  # stop the runaway before the next test


def test_new_release_with_flag_7_on_runs_rlp_and_never_overfills(baseline: Lab):
    node = "smars-5"
    container_id = baseline.engine.get(baseline.settings.container(node)).id
    version = baseline.install_release(node, "8.0.0")
    assert version["release"] == "8.0.0"
    assert version["tree"] == baseline.artifact("8.0.0").tree
    # the switch re-executed the process in place: same container
    assert baseline.engine.get(baseline.settings.container(node)).id == container_id
    _flag_7_on(baseline, node)
    result = run_load(
        baseline, LoadSpec(nodes=(node,), rate=100, duration_s=3, rlp_share=1.0, qty=300)
    )
    assert result.filled == result.sent > 200
    assert result.overfilled == 0 and result.excess_shares == 0
    stats = baseline.venue_admin().get("/stats")
    assert stats["nodes"][node]["excess_shares"] == 0
    assert stats["nodes"][node]["releases"] == {"8.0.0": stats["nodes"][node]["executions"]}
    assert stats["nodes"][node]["shares"] == 300 * result.sent
    rows = baseline.venue_admin().get("/executions?since=0&limit=50")
    strategies = {row[rows["fields"].index("strategy")] for row in rows["executions"]}
    assert strategies == {"rlp"}


def test_hostile_input_is_rejected_and_the_router_stays_up(baseline: Lab):
    node = "smars-2"
    port = baseline.order_port(node)
    admin = baseline.node_admin(node)
    before = admin.metrics()
    good = {"type": "order", "id": "ok-1", "symbol": "KCG", "side": "buy", "qty": 100}
    bad = [
        b"this is not json\n",
        b"[1, 2, 3]\n",
        b"\xff\xfe\xfd\n",
        b'{"type": "order", ' + b'"x": "' + b"A" * 10_000 + b'"}\n',
        b"[" * 5000 + b"]" * 5000 + b"\n",
        json.dumps({**good, "id": "u-1", "colour": "red"}).encode() + b"\n",
        json.dumps({**good, "id": "z-1", "qty": 0}).encode() + b"\n",
        json.dumps({**good, "id": "n-1", "qty": -5}).encode() + b"\n",
        json.dumps({**good, "id": "b-1", "qty": True}).encode() + b"\n",
        json.dumps({**good, "id": "s-1", "side": "short"}).encode() + b"\n",
        json.dumps({**good, "id": "m-1", "qty": None}).encode() + b"\n",
    ]
    answers = exchange(port, [*bad, json.dumps(good).encode() + b"\n"], expect=len(bad) + 2)
    rejects = [a for a in answers if a["type"] == "reject"]
    assert [r["reason"] for r in rejects] == ["malformed"] * 5 + ["invalid"] * 6
    assert all(r["retry"] is False for r in rejects)
    assert [r["id"] for r in rejects[5:]] == ["u-1", "z-1", "n-1", "b-1", "s-1", "m-1"]
    assert [a["type"] for a in answers if a.get("id") == "ok-1"] == ["ack", "fill"]
    after = admin.metrics()
    for reason, count in (("malformed", 5), ("invalid", 6)):
        delta = metric(after, "smars_rejects_total", reason=reason) - metric(
            before, "smars_rejects_total", reason=reason
        )
        assert delta == count, reason
    assert admin.get("/health")["status"] == "ok"


def test_malformed_flags_file_keeps_the_last_good_flags_and_reports_the_error(baseline: Lab):
    node = "smars-4"
    admin = baseline.node_admin(node)
    good = admin.get("/version")["flags"]
    for content in (
        b"{not json",
        b'{"flags": {"flag_7": {"value": "yes", "meaning": "rlp"}}}',
        b"[]",
    ):
        baseline.write_flags_file(node, content)
        answer = admin.post("/reload")
        version = admin.get("/version")
        assert version["flags"] == good
        assert version["flags_error"], content
        assert answer.get("flags_error") == version["flags_error"]
        assert admin.request("GET", "/health", auth=False).status == 200
    assert metric(admin.metrics(), "smars_flag_errors_total") >= 3


def test_mutating_admin_calls_need_the_token(baseline: Lab):
    node = baseline.node_admin("smars-6")
    for path in ("/kill", "/resume", "/intake/pause", "/intake/resume", "/reload"):
        assert node.request("POST", path, {}, auth=False).status == 401, path
    wrong = type(node)("smars-6", int(node.base.rsplit(":", 1)[1]), "not-the-token")
    assert wrong.request("POST", "/kill", {}).status == 401
    assert node.get("/version")["trading"] == "active"
    assert node.get("/version")["intake"] == "open"
    assert baseline.venue_admin().request("POST", "/reset", {}, auth=False).status == 401


def test_kill_switch_cancels_and_refuses_then_resume_trades_again(baseline: Lab):
    node = "smars-7"
    admin = baseline.node_admin(node)
    assert admin.post("/kill")["trading"] == "killed"
    port = baseline.order_port(node)
    order = {"type": "order", "id": "k-1", "symbol": "KCG", "side": "sell", "qty": 100}
    [answer] = exchange(port, [json.dumps(order).encode() + b"\n"], expect=1)
    assert (answer["type"], answer["reason"], answer["retry"]) == ("reject", "killed", False)
    assert admin.post("/resume")["trading"] == "active"
    answers = exchange(port, [json.dumps({**order, "id": "k-2"}).encode() + b"\n"], expect=2)
    assert [a["type"] for a in answers] == ["ack", "fill"]
