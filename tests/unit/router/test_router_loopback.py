"""The real router (`python3 -S -P -m smars`) on 127.0.0.1 against a fake venue: orders, admin
API, flags reload on SIGHUP and the release switch on SIGUSR2."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from router_fixtures import TOKEN, finished, order, point, switch_twice_under_load, wait_for
from smars.release import tree_hash

pytestmark = pytest.mark.timeout(60)


def metric(router, name: str) -> float:
    found = router.metrics()
    assert name in found, f"{name} not in /metrics"
    return found[name]


def test_an_order_is_acked_then_filled_in_slices(router_factory, venue):
    router = router_factory()
    client = router.client()
    client.send(order("A-1", qty=250))
    assert client.until(finished) == [
        {"type": "ack", "id": "A-1"},
        {"type": "fill", "id": "A-1", "qty": 100, "price": 10.0, "cum": 100, "leaves": 150},
        {"type": "fill", "id": "A-1", "qty": 100, "price": 10.0, "cum": 200, "leaves": 50},
        {"type": "fill", "id": "A-1", "qty": 50, "price": 10.0, "cum": 250, "leaves": 0},
    ]
    assert [(c["qty"], c["strategy"], c["pqty"]) for c in venue.children] == [
        (100, "sor", 250),
        (100, "sor", 250),
        (50, "sor", 250),
    ]
    hello = venue.hellos[0]
    assert (hello["node"], hello["release"]) == ("smars-t", "7.1.0")
    assert hello["tree"] == router.admin("GET", "/version")[1]["tree"]


def test_malformed_lines_are_rejected_and_the_connection_keeps_serving(router_factory):
    router = router_factory()
    client = router.client()
    client.send(b"garbage\n")
    client.send(b"x" * 5000 + b"\n")
    client.send(b'{"type":"order","id":"B-1","symbol":"KCG","side":"buy","qty":true}\n')
    client.send(b"\xff\n")
    client.send(order("B-2", qty=100))
    got = [client.receive() for _ in range(5)]
    assert [(m["type"], m["id"], m.get("reason")) for m in got[:4]] == [
        ("reject", None, "malformed"),
        ("reject", None, "malformed"),
        ("reject", "B-1", "invalid"),
        ("reject", None, "malformed"),
    ]
    assert all(m["retry"] is False for m in got[:4])
    assert got[4] == {"type": "ack", "id": "B-2"}
    assert client.receive()["leaves"] == 0
    assert metric(router, 'smars_rejects_total{reason="malformed"}') == 3


def test_many_orders_in_one_write_are_all_answered(router_factory):
    router = router_factory()
    client = router.client()
    client.send(b"".join(json.dumps(order(f"C-{i}", qty=100)).encode() + b"\n" for i in range(500)))
    answers = [client.receive() for _ in range(1000)]
    assert sum(m["type"] == "ack" for m in answers) == 500
    assert sum(m.get("leaves") == 0 for m in answers) == 500


def test_admin_mutations_need_the_lab_token(router_factory):
    router = router_factory()
    assert router.admin("POST", "/kill") == (401, {"error": "unauthorized"})
    assert router.admin("POST", "/kill", token="wrong") == (401, {"error": "unauthorized"})
    assert router.admin("GET", "/nowhere")[0] == 404
    assert router.admin("GET", "/kill")[0] == 405
    assert router.admin("GET", "/version")[1]["trading"] == "active"
    status, health = router.admin("GET", "/health")
    assert (status, health) == (
        200,
        {"status": "ok", "venue": "connected", "trading": "active", "intake": "open"},
    )


def test_intake_pause_rejects_with_retry_and_resume_reopens(router_factory):
    router = router_factory()
    client = router.client()
    assert router.admin("POST", "/intake/pause", token=TOKEN)[0] == 200
    client.send(order("D-1"))
    reject = client.receive()
    assert (reject["reason"], reject["retry"]) == ("intake_paused", True)
    router.admin("POST", "/intake/resume", token=TOKEN)
    client.send(order("D-1", qty=100))
    assert client.receive() == {"type": "ack", "id": "D-1"}


def test_the_2012_failure_and_the_kill_switch(router_factory, venue):
    """7.1.0 with flag_7 on: RLP orders wake Power Peg, which overfills until the kill."""
    router = router_factory("7.1.0", flags={"flag_7": (True, "rlp")}, peg_max_children_per_s=200)
    version = router.admin("GET", "/version")[1]
    assert version["flags"]["flag_7"] == {
        "value": True,
        "meaning": "rlp",
        "code_meaning": "power_peg",
    }
    assert metric(router, 'smars_errors_total{kind="flag_meaning"}') == 1
    router.wait_event("flag_meaning_mismatch", flag="flag_7")

    client = router.client()
    client.send(order("K-1", qty=100, rlp=True))
    assert client.receive() == {"type": "ack", "id": "K-1"}
    fills = [client.receive() for _ in range(5)]
    assert [f["cum"] for f in fills] == [100, 200, 300, 400, 500]  # cum > qty: overfilled
    assert fills[-1]["leaves"] == 0
    assert {c["strategy"] for c in venue.children} == {"power_peg"}
    client.send(order("K-1", qty=100, rlp=True))  # Power Peg's parent is still working

    assert router.admin("POST", "/kill", token=TOKEN)[1]["trading"] == "killed"
    tail = client.until(lambda m: m["type"] == "cancelled")
    assert {"type": "reject", "id": "K-1", "reason": "duplicate", "retry": False} in tail
    assert tail[-1]["reason"] == "killed"
    assert tail[-1]["cum"] >= 500
    sent = len(venue.children)
    time.sleep(0.2)
    assert len(venue.children) == sent  # the kill switch stopped the runaway
    client.send(order("K-2"))
    assert client.receive()["reason"] == "killed"
    assert metric(router, "smars_overfill_shares_total") >= 400
    assert metric(router, "smars_trading_active") == 0


def test_rlp_orders_go_to_rlp_in_8_0_0_and_never_overfill(router_factory, venue):
    router = router_factory("8.0.0", flags={"flag_7": (True, "rlp")})
    client = router.client()
    client.send(order("R-1", qty=250, rlp=True))
    messages = client.until(finished)
    assert [m.get("cum") for m in messages] == [None, 100, 200, 250]
    assert [c["strategy"] for c in venue.children] == ["rlp"] * 3
    assert metric(router, "smars_overfill_shares_total") == 0


def test_without_a_venue_health_is_503_and_orders_are_rejected_for_retry(router_factory, venue):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    router = router_factory(venue=f"127.0.0.1:{dead}")
    status, health = router.admin("GET", "/health")
    assert (status, health["venue"]) == (503, "disconnected")
    client = router.client()
    client.send(order("V-1"))
    reject = client.receive()
    assert (reject["reason"], reject["retry"]) == ("venue_down", True)


def test_sighup_reloads_the_flags_and_a_bad_file_keeps_the_last_good(router_factory):
    router = router_factory("8.0.1", flags={"rlp_enable": (False, "rlp")})
    router.set_flags(rlp_enable=(True, "rlp"))
    mark = len(router.events)
    router.signal(signal.SIGHUP)
    router.wait_event("flags_loaded", since=mark)
    version = router.admin("GET", "/version")[1]
    assert version["flags"] == {
        "rlp_enable": {"value": True, "meaning": "rlp", "code_meaning": "rlp"}
    }
    assert version["flags_error"] is None

    router.flags_path.write_text('{"flags": {"rlp_enable": {"value": "yes"}}}')
    mark = len(router.events)
    router.signal(signal.SIGHUP)
    router.wait_event("flags_error", since=mark)
    version = router.admin("GET", "/version")[1]
    assert version["flags"]["rlp_enable"]["value"] is True
    assert "rlp_enable" in version["flags_error"]
    assert metric(router, "smars_flag_errors_total") == 1


def test_reload_reads_the_fleet_manifest(router_factory):
    router = router_factory()
    tree = router.admin("GET", "/version")[1]["tree"]
    assert router.admin("GET", "/version")[1]["fleet"] == {
        "manifest": None,
        "match": None,
        "fencing": False,
        "fenced": None,
    }
    manifest = {"release": "7.1.0", "tree": tree, "epoch": 3}
    (router.home / "fleet.json").write_text(json.dumps(manifest))
    status, body = router.admin("POST", "/reload", token=TOKEN)
    assert (status, body["fleet"]) == (200, {"manifest": manifest, "match": True, "fenced": None})
    (router.home / "fleet.json").write_text(json.dumps({**manifest, "tree": "0" * 64}))
    router.admin("POST", "/reload", token=TOKEN)
    fleet = router.admin("GET", "/version")[1]["fleet"]
    assert (fleet["match"], fleet["fenced"]) == (False, None)  # no fencing guard: it trades on


def test_a_fenced_router_refuses_to_trade_and_says_why(router_factory):
    router = router_factory()
    version = router.admin("GET", "/version")[1]
    (router.home / "guards.json").write_text(json.dumps({"fencing": True}))
    other = {"release": "8.0.0", "tree": "e" * 64, "epoch": 7}
    (router.home / "fleet.json").write_text(json.dumps(other))
    mark = len(router.events)
    status, body = router.admin("POST", "/reload", token=TOKEN)
    assert status == 200
    why = body["fleet"]["fenced"]
    assert why.startswith(f"runs {version['release']} (tree {version['tree'][:12]})")
    assert "8.0.0 (tree eeeeeeeeeeee, epoch 7)" in why
    assert router.wait_event("fenced", since=mark)["reason"] == why
    client = router.client()
    client.send(order("f1"))
    (refused,) = client.until(finished)
    assert (refused["type"], refused["id"], refused["reason"]) == ("reject", "f1", "fenced")
    assert metric(router, "smars_fenced") == 1
    assert metric(router, 'smars_rejects_total{reason="fenced"}') == 1

    # The manifest now names the tree it runs: it trades again.
    (router.home / "fleet.json").write_text(json.dumps({**other, "tree": version["tree"]}))
    router.admin("POST", "/reload", token=TOKEN)
    assert router.admin("GET", "/version")[1]["fleet"]["fenced"] is None
    assert metric(router, "smars_fenced") == 0
    client.send(order("f2"))
    assert client.until(finished)[0] == {"type": "ack", "id": "f2"}


def test_sigusr2_switches_release_and_keeps_the_order_port(router_factory, releases, venue):
    router = router_factory("7.1.0")
    before = router.admin("GET", "/version")[1]
    assert (before["release"], before["tree"]) == ("7.1.0", tree_hash(releases["7.1.0"]))
    port = router.order_port

    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    refused = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            # Connections made while the process re-executes wait in the kept backlog.
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            refused += 1
        try:
            status, after = router.admin("GET", "/version")
        except OSError:
            continue
        if status == 200 and after["release"] == "8.0.1":
            break
        time.sleep(0.01)
    assert refused == 0
    assert after["release"] == "8.0.1"
    assert after["tree"] == tree_hash(releases["8.0.1"])
    assert after["strategies"] == ["rlp", "sor"]
    assert after["pid"] == before["pid"] == router.proc.pid  # same process, new code
    assert after["started_at"] > before["started_at"]
    assert after["intake"] == "open"  # the switch's own pause is not persisted

    client = router.client()
    client.send(order("S-1", qty=100))
    assert client.until(finished)[-1]["leaves"] == 0
    wait_for(lambda: len(venue.hellos) == 2, what="a hello from the new process")
    assert venue.hellos[-1]["release"] == "8.0.1"
    assert venue.hellos[-1]["tree"] == after["tree"]


def test_kill_and_intake_survive_a_release_switch(router_factory, releases):
    router = router_factory("8.0.0")
    router.admin("POST", "/kill", token=TOKEN)
    router.admin("POST", "/intake/pause", token=TOKEN)
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    router.wait_event("started", release="8.0.1")
    version = router.admin("GET", "/version")[1]
    assert (version["release"], version["trading"], version["intake"]) == (
        "8.0.1",
        "killed",
        "paused",
    )


def test_working_parents_are_cancelled_for_restart_on_a_switch(router_factory, releases):
    router = router_factory("7.1.0", flags={"flag_7": (True, "power_peg")})
    client = router.client()
    client.send(order("P-1", qty=100, rlp=True))
    assert client.receive()["type"] == "ack"
    point(router.current, releases["8.0.0"])
    router.signal(signal.SIGUSR2)
    cancelled = client.until(lambda m: m["type"] == "cancelled")[-1]
    assert cancelled["reason"] == "restart"
    assert client.receive() == {"type": "closing", "reason": "restart"}  # then the handover
    # This client ignores it: the connection still closes cleanly, after the bound.
    assert client.reader.readline() == b""
    router.wait_event("started", release="8.0.0")


def test_a_switch_hands_each_connection_over_and_answers_every_late_line(router_factory, releases):
    router = router_factory("7.1.0")
    client = router.client()
    client.send(order("H-1", qty=100))
    assert client.until(finished)[-1]["leaves"] == 0
    point(router.current, releases["8.0.1"])
    since = len(router.events)
    router.signal(signal.SIGUSR2)
    assert client.receive() == {"type": "closing", "reason": "restart"}
    # Lines that were on their way when `closing` left are still read and answered.
    client.send(order("H-2", qty=100))
    client.send(b"not json\n")
    late = [client.receive(), client.receive()]
    assert late[0] == {"type": "reject", "id": "H-2", "reason": "intake_paused", "retry": True}
    assert (late[1]["type"], late[1]["reason"]) == ("reject", "malformed")
    # The client's half-close tells the router it has everything: it closes at once.
    begun = time.monotonic()
    client.sock.shutdown(socket.SHUT_WR)
    assert client.reader.readline() == b""
    assert time.monotonic() - begun < 0.4  # not the bound (0.5 s)
    router.wait_event("started", since=since, release="8.0.1")
    # A new connection is served by the new process (once its venue link is up).
    wait_for(lambda: router.admin("GET", "/health")[0] == 200, what="the venue link")
    again = router.client()
    again.send(order("H-3", qty=100))
    assert again.until(finished)[-1]["leaves"] == 0


def test_a_connection_made_during_the_switch_waits_for_the_new_process(router_factory, releases):
    router = router_factory("7.1.0")
    client = router.client()
    point(router.current, releases["8.0.1"])
    since = len(router.events)
    router.signal(signal.SIGUSR2)
    assert client.receive()["type"] == "closing"
    # The old process accepts no more: this one is served by the new one, nothing is lost.
    late = router.client()
    late.send(order("W-1", qty=100))
    client.sock.shutdown(socket.SHUT_WR)
    assert client.reader.readline() == b""
    answer = late.receive()  # no `closing` first: it was never the old process's connection
    router.wait_event("started", since=since, release="8.0.1")
    # The new process may read it before its venue link is up: a refusal to retry, then.
    assert answer in (
        {"type": "ack", "id": "W-1"},
        {"type": "reject", "id": "W-1", "reason": "venue_down", "retry": True},
    )


def test_no_order_is_lost_when_the_router_switches_twice_under_load(router_factory, releases):
    """The real load generator at 300 orders/s while the real router switches release twice:
    every order ends filled (any refused for retry during a switch is sent again)."""
    router = router_factory("7.1.0")
    pid = router.proc.pid
    started = switch_twice_under_load(router, releases, prefix="SW")
    assert [e["pid"] for e in started] == [pid, pid]  # re-executed in place, twice


def test_a_switch_to_a_broken_target_is_refused_and_the_node_keeps_running(
    router_factory, tmp_path
):
    router = router_factory()
    empty = tmp_path / "empty"
    empty.mkdir()
    point(router.current, empty)
    router.signal(signal.SIGUSR2)
    router.wait_event("switch_refused")
    assert router.admin("GET", "/version")[1]["release"] == "7.1.0"
    client = router.client()
    client.send(order("X-1", qty=100))
    assert client.receive()["type"] == "ack"


def test_sigterm_stops_cleanly_and_removes_the_pid_file(router_factory):
    router = router_factory()
    pid_file = router.home / "router.pid"
    assert pid_file.read_text().strip() == str(router.proc.pid)
    assert router.stop() == 0
    assert not pid_file.exists()
    assert router.events[-1]["event"] == "stopped"
    assert os.path.exists(router.home / "state.json") is False  # nothing changed, nothing written


def test_an_unconfirmed_switch_is_undone_by_the_node_itself(router_factory, releases):
    # A guarded deploy flipped this node to 8.0.0 and paused its intake, then could not reach it
    # to confirm (or to put it back): once the confirm window is over, the node goes back.
    router = router_factory("8.0.0", switch_confirm_s=0.5)
    pending = Path(router.home) / "switch.pending"
    assert not pending.exists()
    router.admin("POST", "/intake/pause", token=TOKEN)
    pending.write_text("7.1.0\n")
    router.signal(signal.SIGUSR2)  # re-exec: the new process finds the marker
    router.wait_event("switch_reverted", previous="7.1.0")
    router.wait_event("started", release="7.1.0")
    version = router.admin("GET", "/version")[1]
    assert (version["release"], version["intake"]) == ("7.1.0", "open")
    assert not pending.exists()
    assert os.path.realpath(router.current) == str(releases["7.1.0"])


def test_a_confirmed_switch_stays(router_factory, releases):
    router = router_factory("8.0.0", switch_confirm_s=8.0)
    # Answered on the loop, so only once its start-up (where a marker would be taken for its own
    # switch's) is over.
    assert router.admin("GET", "/version")[0] == 200
    since = len(router.events)
    pending = Path(router.home) / "switch.pending"
    pending.write_text("7.1.0\n")
    router.signal(signal.SIGUSR2)
    router.wait_event("switch_unconfirmed", since=since, previous="7.1.0")
    pending.unlink()  # the fleet was verified: the deploy confirms
    router.wait_event("switch_confirmed", since=since, previous="7.1.0", timeout=20)
    assert router.admin("GET", "/version")[1]["release"] == "8.0.0"
    assert not [e for e in router.events if e.get("event") == "switch_reverted"]


def test_an_unconfirmed_flip_takes_no_order_until_the_deploy_opens_intake(router_factory, venue):
    """The new process of a guarded flip is closed to orders from its first instant, without
    any pause having been asked for (a flip cut short before the switch leaves nothing paused);
    the deploy's resume, once the fleet runs the new tree, opens it."""
    router = router_factory("8.0.0", switch_confirm_s=30)
    # Answered on the loop, so only once its start-up (where a marker would be taken for its own
    # switch's) is over.
    assert router.admin("GET", "/version")[0] == 200
    since = len(router.events)
    (Path(router.home) / "switch.pending").write_text("7.1.0\n")
    router.signal(signal.SIGUSR2)
    router.wait_event("switch_unconfirmed", since=since, previous="7.1.0")
    assert router.admin("GET", "/version")[1]["intake"] == "paused"
    client = router.client()
    client.send(order("U-1"))
    (refused,) = client.until(finished)
    assert (refused["type"], refused["reason"]) == ("reject", "intake_paused")
    (Path(router.home) / "switch.pending").unlink()
    assert router.admin("POST", "/intake/resume", token=TOKEN)[0] == 200
    client.send(order("U-2"))
    assert client.until(finished)[0] == {"type": "ack", "id": "U-2"}
