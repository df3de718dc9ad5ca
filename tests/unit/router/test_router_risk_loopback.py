"""The risk gate in the real router (`python3 -S -P -m smars`) against a fake venue: the 2012 build
with the reused flag on, first guarded, then with the guard switched off by a reload."""

from __future__ import annotations

import json

import pytest
from router_fixtures import TOKEN, order, wait_for

pytestmark = pytest.mark.timeout(60)


def test_the_risk_guard_stops_power_peg_at_its_parent_and_a_reload_switches_it(
    router_factory, venue, tmp_path
):
    guards = tmp_path / "guards.json"
    guards.write_text(json.dumps({"risk": True}))
    router = router_factory(
        "7.1.0",
        flags={"flag_7": (True, "rlp")},
        peg_max_children_per_s=200,
        guards_path=str(guards),
    )
    client = router.client()
    client.send(order("K-1", qty=100, rlp=True))
    assert client.receive() == {"type": "ack", "id": "K-1"}
    assert client.receive() == {
        "type": "fill",
        "id": "K-1",
        "qty": 100,
        "price": 10.0,
        "cum": 100,
        "leaves": 0,
    }
    refused = 'smars_risk_refused_total{reason="overfill"}'
    wait_for(lambda: router.metrics()[refused] >= 5, what="overfill refusals")
    assert [(c["parent"], c["qty"], c["strategy"]) for c in venue.children] == [
        ("K-1", 100, "power_peg")
    ]
    got = router.metrics()
    assert got["smars_risk_enabled"] == 1
    assert got["smars_overfill_shares_total"] == 0
    assert got['smars_risk_would_refuse_total{reason="overfill"}'] == 0
    assert got["smars_risk_exposure_dollars"] == 10_000.0  # priced at $100: KCG had not traded
    risk = router.admin("GET", "/version")[1]["risk"]
    assert risk["enabled"] is True
    assert risk["limits"] == {
        "max_child_per_s": 500_000,
        "max_notional": 250_000_000.0,
        "reference_price": 100.0,
        "child_burst": 50_000.0,
    }
    assert risk["refused"]["overfill"] >= 5
    assert risk["refused"]["killed"] == risk["refused"]["rate"] == 0
    event = router.wait_event("risk_refused_overfill")
    assert (event["parent"], event["strategy"], event["committed"]) == ("K-1", "power_peg", 100)

    guards.write_text(json.dumps({"risk": False}))  # the 2012 way: nothing stops it
    assert router.admin("POST", "/reload", token=TOKEN)[0] == 200
    assert [client.receive()["cum"] for _ in range(3)] == [200, 300, 400]
    got = router.metrics()
    assert got["smars_risk_enabled"] == 0
    assert got['smars_risk_would_refuse_total{reason="overfill"}'] >= 3
    assert got["smars_overfill_shares_total"] >= 300

    status, body = router.admin("POST", "/kill", token=TOKEN)
    assert (status, body["cancelled"]) == (200, 1)
    assert client.until(lambda m: m["type"] == "cancelled")[-1]["reason"] == "killed"
    assert router.metrics()["smars_risk_exposure_dollars"] == 0
