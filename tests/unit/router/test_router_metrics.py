"""The Prometheus exposition of the router."""

from __future__ import annotations

from router_fixtures import samples
from smars.metrics import Snapshot, render


def snapshot(**changes) -> Snapshot:
    base = dict(
        node="smars-1",
        release="7.1.0",
        tree="abc",
        acked=12_345_678,
        rejects={"killed": 2, "malformed": 1},
        children={"sor": 3, "power_peg": 0},
        executions=3,
        shares=300,
        overfill_shares=0,
        working=1,
        trading_active=True,
        intake_open=False,
        venue_connected=True,
        flags={"flag_7": {"value": True, "meaning": 'r"l\\p', "code_meaning": None}},
        flag_errors=1,
        errors={"flag_meaning": 2},
    )
    return Snapshot(**{**base, **changes})


def test_every_documented_series_is_exposed_with_its_value():
    got = samples(render(snapshot()))
    assert got['smars_info{node="smars-1",release="7.1.0",tree="abc"}'] == "1"
    assert got['smars_parent_orders_total{result="acked"}'] == "12345678"
    assert got['smars_parent_orders_total{result="rejected"}'] == "3"
    assert got['smars_rejects_total{reason="killed"}'] == "2"
    assert got['smars_child_orders_total{strategy="sor"}'] == "3"
    assert got['smars_child_orders_total{strategy="power_peg"}'] == "0"
    assert got["smars_executions_total"] == "3"
    assert got["smars_shares_executed_total"] == "300"
    assert got["smars_overfill_shares_total"] == "0"
    assert got["smars_working_parents"] == "1"
    assert got["smars_trading_active"] == "1"
    assert got["smars_intake_open"] == "0"
    assert got["smars_venue_connected"] == "1"
    assert got["smars_flag_errors_total"] == "1"
    assert got['smars_errors_total{kind="flag_meaning"}'] == "2"


def test_label_values_are_escaped_and_null_is_empty():
    got = samples(render(snapshot()))
    key = 'smars_flag_value{flag="flag_7",meaning="r\\"l\\\\p",code_meaning=""}'
    assert got[key] == "1"


def test_the_admin_order_port_and_venue_gauges():
    got = samples(
        render(
            snapshot(
                venue_silent=True,
                order_connections=7,
                admin_connections=3,
                admin_polls=2,
                admin_evicted=5,
            )
        )
    )
    assert got["smars_venue_silent"] == "1"
    assert got["smars_order_connections"] == "7"
    assert got["smars_admin_connections"] == "3"
    assert got["smars_admin_polls"] == "2"
    assert got["smars_admin_evicted_total"] == "5"
