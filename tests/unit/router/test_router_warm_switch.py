"""The warm switch, on loopback: the real router kept by the real routerd, as in the lab image.

Armed with a release, the router starts a standby process of it (imports done, tree hashed);
at the switch it hands its listening sockets over and exits, and routerd adopts the standby.
Without a usable standby the switch re-executes, as an unsupervised router always does."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from router_fixtures import (
    ROUTERD,
    TOKEN,
    finished,
    make_release,
    order,
    point,
    switch_twice_under_load,
    wait_for,
)
from routerd import children, proc_stat
from smars.errors import ReleaseError
from smars.release import tree_hash
from smars.switch import Standby


def gone(pid: int) -> bool:
    """No such process, or only its zombie left."""
    stat = proc_stat(pid)
    return stat is None or stat[0] == "Z"


def parent_of(pid: int) -> int:
    stat = proc_stat(pid)
    assert stat is not None, f"no process {pid}"
    return stat[1]


def arm(router, releases, release: str, as_release: str | None = None) -> dict:
    tree = tree_hash(releases[release])
    status, body = router.admin(
        "POST", f"/switch/arm?tree={tree}&release={as_release or release}", token=TOKEN
    )
    assert status == 200, body
    assert body["armed"] == tree
    return body["standby"]


def test_a_warm_switch_hands_the_sockets_to_the_standby(router_factory, releases, venue):
    router = router_factory("7.1.0", supervised=True)
    before = router.admin("GET", "/version")[1]
    assert parent_of(before["pid"]) == router.proc.pid  # routerd's child

    standby = arm(router, releases, "8.0.1")
    assert isinstance(standby["pid"], int) and standby["pid"] != before["pid"]
    assert parent_of(standby["pid"]) == before["pid"]  # the router's child, until the switch
    # Armed: every peer's long poll sees it at once.
    tree = tree_hash(releases["8.0.1"])
    assert router.admin("GET", f"/switch/armed?tree={tree}&wait=0")[1]["ready"] is True

    port = router.order_port
    since = len(router.events)
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)  # to routerd, which passes it on
    refused = 0
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline and after["release"] != "8.0.1":
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            refused += 1
        with contextlib.suppress(OSError):
            after = router.admin("GET", "/version")[1]
    assert refused == 0
    assert (after["release"], after["tree"]) == ("8.0.1", tree)
    assert after["pid"] == standby["pid"]
    assert router.proc.poll() is None  # routerd lives on
    assert (router.home / "router.pid").read_text().strip() == str(after["pid"])
    handover = router.wait_event("switch_handover", since=since)
    assert handover["standby"] == standby["pid"]
    # The standby is the old router's child until that one has exited: then routerd has it.
    exited = router.wait_event("router_exited", since=since, pid=before["pid"])
    assert exited["code"] == 0 and exited["running"] == [after["pid"]]
    assert parent_of(after["pid"]) == router.proc.pid  # adopted
    assert not [e for e in router.events[since:] if e.get("event") == "switch_exec"]
    wait_for(lambda: gone(before["pid"]), what="the old router reaped")

    client = router.client()
    client.send(order("W-1", qty=100))
    assert client.until(finished)[-1]["leaves"] == 0
    wait_for(lambda: len(venue.hellos) == 2, what="a hello from the new process")
    assert venue.hellos[-1]["tree"] == tree


def test_no_order_is_lost_across_warm_switches_under_load(router_factory, releases):
    """The real load generator at 300 orders/s while the router hands over twice."""
    router = router_factory("7.1.0", supervised=True)
    first = router.admin("GET", "/version")[1]["pid"]
    standbys: list[int] = []
    started = switch_twice_under_load(
        router,
        releases,
        prefix="WS",
        before_switch=lambda release: standbys.append(arm(router, releases, release)["pid"]),
    )
    assert [e["pid"] for e in started] == standbys  # each switch went to its standby
    assert len({first, *standbys}) == 3
    wait_for(lambda: gone(first) and gone(standbys[0]), what="the replaced routers reaped")


def test_a_standby_of_another_release_is_discarded_and_the_switch_re_executes(
    router_factory, releases
):
    router = router_factory("7.1.0", supervised=True)
    before = router.admin("GET", "/version")[1]
    standby = arm(router, releases, "8.0.1")
    since = len(router.events)
    point(router.current, releases["8.0.0"])  # not what the node was armed for
    router.signal(signal.SIGUSR2)
    router.wait_event("started", since=since, release="8.0.0")
    discarded = router.wait_event("standby_discarded", since=since)
    assert (discarded["standby"], discarded["reason"]) == (standby["pid"], "another target")
    router.wait_event("switch_exec", since=since)
    assert router.admin("GET", "/version")[1]["pid"] == before["pid"]  # re-executed in place
    wait_for(lambda: gone(standby["pid"]), what="the standby ended")


def test_a_tree_the_release_does_not_hold_arms_without_a_standby(router_factory, releases):
    router = router_factory("7.1.0", supervised=True)
    standby = arm(router, releases, "8.0.0", as_release="8.0.1")
    assert standby["pid"] is None
    assert "not" in standby["error"] and tree_hash(releases["8.0.0"])[:12] in standby["error"]
    failed = router.wait_event("standby_failed")
    assert failed["target"] == str(releases["8.0.1"])
    # Only routerd and the router are left.
    router_pid = router.admin("GET", "/version")[1]["pid"]
    wait_for(
        lambda: [p for p in children(router_pid) if not gone(p)] == [],
        what="the rejected standby ended",
    )


def test_a_bad_release_name_is_refused(router_factory):
    router = router_factory("7.1.0", supervised=True)
    status, body = router.admin("POST", f"/switch/arm?tree={'ab' * 32}&release=../x", token=TOKEN)
    assert (status, body) == (400, {"error": "release: expected a release name"})


def test_a_standby_no_switch_comes_for_is_discarded(router_factory, releases):
    # Kept from its start: long enough for a loaded machine to have it ready first.
    router = router_factory("7.1.0", supervised=True, standby_keep_s=3.0)
    standby = arm(router, releases, "8.0.1")
    discarded = router.wait_event("standby_discarded")
    assert (discarded["standby"], discarded["reason"]) == (standby["pid"], "no switch came")
    wait_for(lambda: gone(standby["pid"]), what="the standby ended")


def test_routerd_passes_sigterm_on_and_ends_with_the_router(router_factory, releases):
    router = router_factory("7.1.0", supervised=True)
    router_pid = router.admin("GET", "/version")[1]["pid"]
    standby = arm(router, releases, "8.0.1")
    router.proc.send_signal(signal.SIGTERM)
    assert router.proc.wait(10) == 0
    assert router.wait_event("routerd_exit")["code"] == 0
    assert gone(router_pid)
    wait_for(lambda: gone(standby["pid"]), what="the standby ended")


def test_routerd_refuses_what_is_not_a_release_tree(tmp_path):
    run = subprocess.run(
        [sys.executable, "-S", "-P", str(ROUTERD), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.returncode == 78
    assert run.stderr == f"routerd: {tmp_path}: not a release tree (no smars/__main__.py)\n"


def test_a_prepared_standby_is_the_one_armed_and_serves_a_switch_without_arming(
    router_factory, releases
):
    """A deploy's stage step prepares (no wait); its flip arms (waits until ready); a deploy
    that never arms (the 2012 way) switches to the prepared standby all the same."""
    router = router_factory("7.1.0", supervised=True)
    tree = tree_hash(releases["8.0.1"])
    status, body = router.admin("POST", f"/switch/prepare?tree={tree}&release=8.0.1", token=TOKEN)
    assert status == 200 and isinstance(body["standby"]["pid"], int)
    prepared = body["standby"]["pid"]
    assert arm(router, releases, "8.0.1")["pid"] == prepared  # the same process, not a second

    since = len(router.events)
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    assert router.wait_event("started", since=since, release="8.0.1")["pid"] == prepared
    back = tree_hash(releases["7.1.0"])
    status, body = router.admin("POST", f"/switch/prepare?tree={back}&release=7.1.0", token=TOKEN)
    since = len(router.events)
    point(router.current, releases["7.1.0"])
    router.signal(signal.SIGUSR2)  # no arm this time
    started = router.wait_event("started", since=since, release="7.1.0")
    assert started["pid"] == body["standby"]["pid"] != prepared
    # Preparing what the node already runs starts nothing.
    status, body = router.admin("POST", f"/switch/prepare?tree={back}&release=7.1.0", token=TOKEN)
    assert (status, body) == (200, {"tree": back, "standby": None})


def test_a_standby_that_died_is_no_refusal_the_switch_re_executes(router_factory, releases):
    router = router_factory("7.1.0", supervised=True)
    before = router.admin("GET", "/version")[1]
    standby = arm(router, releases, "8.0.1")
    os.kill(standby["pid"], signal.SIGKILL)
    wait_for(lambda: gone(standby["pid"]), what="the standby killed")
    since = len(router.events)
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)
    started = router.wait_event("started", since=since, release="8.0.1")
    assert started["pid"] == before["pid"]  # re-executed in place
    failed = router.wait_event("standby_failed", since=since)
    assert failed["error"] == "the standby exited"
    router.wait_event("switch_exec", since=since)


# -- what a standby and routerd run: only a clean tree, hashed before any of its code runs --------


def _tamper_on_import(tree, witness) -> None:
    """Make importing the tree's package leave a witness file: proof that its code ran."""
    init = tree / "smars" / "__init__.py"
    init.write_text(f"open({str(witness)!r}, 'w').close()\n" + init.read_text())


def test_a_standby_of_a_tree_that_is_not_the_one_asked_for_never_runs_its_code(releases, tmp_path):
    tree = releases["8.0.1"]
    asked = tree_hash(tree)
    witness = tmp_path / "imported"
    _tamper_on_import(tree, witness)
    found = tree_hash(tree)
    with pytest.raises(ReleaseError, match=f"holds tree {found[:12]}, not {asked[:12]}"):
        Standby.spawn(str(tree), asked, [], {})
    assert not witness.exists()  # refused before a process of it was started


def test_a_standby_of_a_tree_holding_stray_bytecode_is_refused_before_it_starts(releases):
    tree = releases["8.0.1"]
    asked = tree_hash(tree)
    (tree / "smars" / "strategies" / "rlp.pyc").write_bytes(b"\0")
    with pytest.raises(ReleaseError, match=re.escape("smars/strategies/rlp.pyc: bytecode:")):
        Standby.spawn(str(tree), asked, [], {})


def test_arming_for_a_tree_with_stray_bytecode_starts_no_standby(router_factory, releases):
    router = router_factory("7.1.0", supervised=True)
    tree = tree_hash(releases["8.0.1"])
    (releases["8.0.1"] / "smars" / "stray.pyc").write_bytes(b"\0")
    status, body = router.admin("POST", f"/switch/arm?tree={tree}&release=8.0.1", token=TOKEN)
    assert status == 200
    assert body["standby"]["pid"] is None
    assert f"{releases['8.0.1']}/smars/stray.pyc: bytecode:" in body["standby"]["error"]
    router_pid = router.admin("GET", "/version")[1]["pid"]
    assert [p for p in children(router_pid) if not gone(p)] == []


def test_no_router_process_writes_bytecode_into_a_release_tree(
    router_factory, releases, monkeypatch
):
    """Python writes __pycache__/ beside what it imports unless told not to: the routers that
    routerd, a standby and a re-exec start are told not to, whatever the environment says."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    router = router_factory("7.1.0", supervised=True)
    arm(router, releases, "8.0.1")
    since = len(router.events)
    point(router.current, releases["8.0.1"])
    router.signal(signal.SIGUSR2)  # warm: to the standby
    started = router.wait_event("started", since=since, release="8.0.1")
    # routerd forwards a signal to its own children: the new router is one once the old has gone.
    router.wait_event("router_exited", since=since, running=[started["pid"]])
    since = len(router.events)
    point(router.current, releases["8.0.0"])
    router.signal(signal.SIGUSR2)  # no standby of 8.0.0: re-executed
    router.wait_event("switch_exec", since=since)
    router.wait_event("started", since=since, release="8.0.0")
    root = releases["7.1.0"].parent
    written = [p for p in root.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]
    assert written == []


def test_routerd_refuses_a_tree_that_is_not_clean(releases):
    tree = releases["7.1.0"]
    (tree / "smars" / "stray.pyc").write_bytes(b"\0")
    run = subprocess.run(
        [sys.executable, "-S", "-P", str(ROUTERD), str(tree)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.returncode == 78
    assert run.stderr.startswith(f"routerd: {tree}/smars/stray.pyc: bytecode:")


def test_routerd_refuses_a_tree_that_is_no_release_folder(tmp_path):
    """What a hostile pending marker (`../../etc`) would lead the node's start to."""
    tree = make_release(tmp_path / "opt", "etc", ("sor", "power_peg"), {"flag_7": "power_peg"})
    run = subprocess.run(
        [sys.executable, "-S", "-P", str(ROUTERD), str(tree)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert run.returncode == 78
    assert run.stderr == (f"routerd: {tree}: not a release folder (releases/MAJOR.MINOR.PATCH)\n")
