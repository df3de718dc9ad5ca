"""Deploys on real containers through real Ansible: all or none when guarded, the 2012 mess when
not, nothing lost and nothing interleaved under load, and a uniform fleet whatever fails."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from toolkit.deploy.operations import DeployResult, deploy, flag, killswitch, rollback
from toolkit.lab.lab import Lab
from toolkit.lab.load import LoadResult, LoadSpec, during_load

NEW = "8.0.0"


def running(lab: Lab) -> dict[str, tuple[str | None, int | None]]:
    """node -> (release, pid) as each router reports it."""
    out = {}
    for node in lab.settings.node_names:
        version = lab.node_admin(node).get("/version")
        out[node] = (version["release"], version["pid"])
    return out


def test_guarded_deploy_puts_every_node_on_the_release(baseline: Lab):
    names = baseline.settings.node_names
    before = running(baseline)
    result = deploy(baseline, NEW)
    assert result.status == "deployed", result.error
    assert result.nodes == {n: {"before": "7.1.0", "after": NEW} for n in names}
    tree = baseline.artifact(NEW).tree
    assert {n.tree for n in baseline.status().nodes} == {tree}
    assert (
        result.timings["flip_skew_ms"] is not None and result.timings["intake_pause_ms"] is not None
    )
    # Every node handed over to the standby its stage step started: a new process each.
    assert result.switches == {n: "warm" for n in names}
    after = running(baseline)
    assert [n for n in names if after[n][1] == before[n][1]] == []
    back = rollback(baseline)
    assert back.status == "deployed"
    assert back.switches == {n: "warm" for n in names}
    assert {n.release for n in baseline.status().nodes} == {"7.1.0"}


def test_a_skipped_node_makes_the_guarded_deploy_refuse_before_anything_flips(baseline: Lab):
    before = running(baseline)
    result = deploy(baseline, NEW, skip=["smars-8"])
    assert result.status == "refused"
    assert result.phase == "barrier"
    assert "smars-8" in result.error
    assert running(baseline) == before  # same release, same process: nothing was touched


def test_the_2012_way_leaves_the_skipped_node_on_the_old_code(baseline: Lab):
    result = deploy(baseline, NEW, skip=["smars-3"], unsafe=True)
    assert result.status == "failed"
    after = {n: v["after"] for n, v in result.nodes.items()}
    assert after == {n: ("7.1.0" if n == "smars-3" else NEW) for n in baseline.settings.node_names}
    assert "smars-3" in result.error


def test_flags_and_kill_switch_reach_every_node(baseline: Lab):
    on = flag(baseline, "flag_7", True)
    assert on.status == "done" and len(on.nodes) == 8
    for node in baseline.status().nodes:
        # the launch declares the new meaning; the 7.1.0 code still reads it as Power Peg
        assert node.flags["flag_7"] == {
            "value": True,
            "meaning": "rlp",
            "code_meaning": "power_peg",
        }
    killed = killswitch(baseline, True)
    assert killed.status == "done"
    assert {n.trading for n in baseline.status().nodes} == {"killed"}
    assert killswitch(baseline, False).status == "done"
    assert {n.trading for n in baseline.status().nodes} == {"active"}


def deploy_under_load(lab: Lab) -> tuple[DeployResult, LoadResult]:
    """A guarded deploy of NEW while orders flow: from before the deploy until a second or
    more of orders (300) have filled on the new release, however long the deploy takes."""
    spec = LoadSpec(rate=300, duration_s=600, qty=200, drain_s=8, prefix="deployload")
    return during_load(lab, spec, lambda: deploy(lab, NEW))


def assert_atomic_under_load(lab: Lab, result: DeployResult, account: LoadResult) -> None:
    assert result.status == "deployed", result.error
    assert account.accounted
    assert account.unanswered == 0 and account.working == 0, account.open_orders()
    assert account.filled + account.rejected == account.sent
    assert account.rejected == 0  # paused intake asks for a retry, and the retries got through
    releases = [e["release"] for e in lab.executions()]
    assert "7.1.0" in releases and NEW in releases
    first_new = releases.index(NEW)
    assert releases[first_new:].count("7.1.0") == 0  # interleaved orders
    assert lab.venue_admin().get("/stats")["excess_shares"] == 0
    tree = lab.artifact(NEW).tree
    assert {(n.release, n.tree) for n in lab.status().nodes} == {(NEW, tree)}


def test_guarded_deploy_under_load_loses_no_order_and_never_interleaves_releases(baseline: Lab):
    assert_atomic_under_load(baseline, *deploy_under_load(baseline))


def fewer_forks(lab: Lab, forks: int) -> Lab:
    """The same lab, driven by Ansible with `forks` hosts at a time."""
    assert forks < lab.settings.nodes
    return Lab(replace(lab.settings, forks=forks), engine=lab.engine)


def test_a_fleet_larger_than_one_batch_of_forks_deploys_atomically_under_load(baseline: Lab):
    """Three forks for eight nodes: the nodes of the first batch arm and wait for their peers
    while Ansible goes on with the next two batches; the fleet still flips together."""
    lab = fewer_forks(baseline, 3)
    result, account = deploy_under_load(lab)
    assert_atomic_under_load(lab, result, account)
    assert result.switches == {n: "warm" for n in lab.settings.node_names}


def test_a_node_failing_in_the_last_batch_stops_the_flips_already_waiting(baseline: Lab):
    """Three forks: smars-1..7 have handed their flips over and wait for smars-8, whose staged
    copy was damaged after the barrier, so its flip fails. The rescue runs everywhere and
    stops each waiting flip first: the fleet stays on the old release, and no flip is left to
    switch a node after its rescue."""
    lab = fewer_forks(baseline, 3)
    victim = lab.engine.get(lab.settings.container("smars-8"))
    handed: list[str] = []
    rescues: dict[str, dict] = {}

    def watch(ev) -> None:
        if ev.kind == "task_start" and ev.task.startswith("Barrier: every node"):
            lab.engine.exec(
                victim,
                ["sh", "-c", f"echo '# tampered' >> /opt/smars/releases/{NEW}/smars/wire.py"],
                user=lab.settings.deploy_user,
            )
        if ev.kind == "ok" and ev.phase == "flip" and ev.output and "flipping" in ev.output:
            handed.append(ev.host)
        if ev.kind == "ok" and ev.phase == "rescue" and ev.output:
            rescues[ev.host] = ev.output

    result = deploy(lab, NEW, on_event=watch)
    assert result.status == "rolled_back", result.error
    assert "smars-8" in result.error and "tree" in result.error
    assert sorted(handed) == [f"smars-{i}" for i in range(1, 8)]
    assert {n: rescues[n]["flip_stopped"] for n in handed} == {n: "stopped" for n in handed}
    assert {(n.release, n.intake) for n in lab.status().nodes} == {("7.1.0", "open")}
    still_running = (
        "pid=$(cat /var/lib/smars/flip/pid); cat /var/lib/smars/flip/decision; "
        "grep -qs flip-start /proc/$pid/cmdline && echo running || echo ended"
    )
    for node in handed:
        code, out = lab.engine.exec(
            lab.engine.get(lab.settings.container(node)),
            ["sh", "-c", still_running],
            user=lab.settings.deploy_user,
        )
        assert (code, out.split()) == (0, ["stop", "ended"]), node


@pytest.mark.parametrize("phase", ["preflight", "stage", "flip"])
@pytest.mark.parametrize("fault", ["stop", "pause"])
def test_a_node_lost_at_any_phase_leaves_the_fleet_uniform(baseline: Lab, phase: str, fault: str):
    victim = baseline.engine.get(baseline.settings.container("smars-5"))
    hit = threading.Event()

    def inject(ev) -> None:
        if ev.kind == "task_start" and ev.phase == phase and not hit.is_set():
            hit.set()
            victim.stop(timeout=1) if fault == "stop" else victim.pause()

    try:
        result = deploy(baseline, NEW, on_event=inject)
    finally:
        victim.reload()
        if victim.status == "paused":
            victim.unpause()
        elif victim.status != "running":
            victim.start()
    assert hit.is_set()
    assert result.status in ("refused", "rolled_back", "failed")
    assert result.status != "deployed"
    baseline.wait_healthy(timeout=30)
    releases = {n.release for n in baseline.status().nodes}
    assert len(releases) == 1, baseline.status().to_json()["nodes"]


def test_a_corrupted_staged_artifact_is_caught_before_the_switch(baseline: Lab):
    victim = baseline.engine.get(baseline.settings.container("smars-2"))
    hit = threading.Event()

    def corrupt(ev) -> None:
        # after every node staged, before any flips: damage one node's copy of the release
        if (
            ev.kind == "task_start"
            and ev.task.startswith("Barrier: every node")
            and not hit.is_set()
        ):
            hit.set()
            baseline.engine.exec(
                victim,
                ["sh", "-c", f"echo '# tampered' >> /opt/smars/releases/{NEW}/smars/wire.py"],
                user=baseline.settings.deploy_user,  # who may write a release tree
            )

    result = deploy(baseline, NEW, on_event=corrupt)
    assert hit.is_set()
    assert result.status == "rolled_back", result
    assert "smars-2" in result.error and "tree" in result.error
    assert {n.release for n in baseline.status().nodes} == {"7.1.0"}


def test_a_small_seeded_fault_campaign_never_ends_mixed_nor_loses_an_order(lab: Lab):
    from toolkit.chaos.campaign import run_campaign, schedules

    assert schedules(lab, 7, 3) == schedules(lab, 7, 3)  # seeded: the same list every time
    campaign = run_campaign(lab, seed=7, count=3)
    assert len(campaign.schedules) == 3
    assert all(r.injected for r in campaign.schedules)
    assert campaign.mixed == 0, campaign.to_json()
    assert campaign.lost_orders == 0, campaign.to_json()


@pytest.mark.parametrize("moment", ["stage", "flip"])
def test_ctrl_c_during_a_deploy_leaves_the_fleet_uniform(baseline: Lab, moment: str):
    """Ctrl-C reaches the whole process group (knight and ansible-playbook) while the nodes
    stage or flip; whatever each node was doing, the fleet ends on one release, healthy."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from interrupt import at_a_terminal

    for node in baseline.settings.node_names:  # so that the deploy has to download it
        container = baseline.engine.get(baseline.settings.container(node))
        baseline.engine.exec(
            container,
            ["rm", "-rf", f"/opt/smars/releases/{NEW}"],
            user=baseline.settings.deploy_user,
        )
    knight = str(Path(sys.executable).with_name("knight"))
    proc = subprocess.Popen(
        [knight, "deploy", NEW, "--json"],
        env={**os.environ, "KNIGHT_LAB": baseline.settings.lab},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=at_a_terminal,
    )
    # However long a loaded machine takes to get the deploy there; it ends the wait if it ends.
    try:
        _reach(baseline, proc, moment, time.monotonic() + 300)
    finally:
        # Whatever the test found, the deploy gets Ctrl-C now (and is waited for): none is left
        # to run on under the tests that follow.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-2000:]
    # A flip the deploy never confirmed is undone by the nodes themselves within the confirm
    # window: wait until every node trades again, then the fleet must be on one release.
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        status = baseline.status()
        if all(n.healthy and n.intake == "open" for n in status.nodes):
            break
        time.sleep(0.5)
    assert {n.intake for n in status.nodes} == {"open"}, [(n.name, n.intake) for n in status.nodes]
    releases = {n.name: n.release for n in status.nodes}
    assert len(set(releases.values())) == 1, releases


def _reach(lab: Lab, proc, moment: str, deadline: float) -> None:
    """Wait until the deploy run by `proc` stages (smars-4 has the new release's folder) or
    flips (one of three nodes has paused its intake); fail if it ends or `deadline` passes."""
    import time

    while time.monotonic() < deadline and proc.poll() is None:
        if moment == "stage":
            code, _ = lab.engine.exec(
                lab.engine.get(lab.settings.container("smars-4")),
                ["sh", "-c", f"ls -d /opt/smars/releases/*{NEW}* 2>/dev/null | grep -q ."],
            )
            if code == 0:
                return
        elif any(
            lab.node_admin(n).get("/version").get("intake") == "paused"
            for n in ("smars-1", "smars-5", "smars-8")
        ):
            return
        time.sleep(0.05)
    assert proc.poll() is None, "the deploy ended before it could be interrupted"
    raise AssertionError(f"the deploy never reached {moment}")


HOSTILE = "$(touch /tmp/pwned)"


def pwned(lab: Lab) -> list[str]:
    """The nodes on which a hostile value ran its command (it leaves /tmp/pwned behind)."""
    found = []
    for node in lab.settings.node_names:
        container = lab.engine.get(lab.settings.container(node))
        code, _ = lab.engine.exec(container, ["test", "-e", "/tmp/pwned"])
        found += [node] if code == 0 else []
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["flags", "set", "flag_7", "on", "--meaning", HOSTILE],
        ["flags", "set", "flag_7", "off", "--meaning", "rlp;touch /tmp/pwned"],
        ["flags", "set", HOSTILE, "on", "--meaning", "rlp"],
        ["flags", "set", "flag_7`touch /tmp/pwned`", "off", "--unsafe"],
        ["deploy", HOSTILE],
        ["deploy", f"{NEW};touch /tmp/pwned", "--unsafe"],
        ["rollback", "--to", HOSTILE],
    ],
)
def test_a_hostile_value_is_refused_in_one_line_and_runs_nothing_on_any_node(
    baseline: Lab, args: list[str]
):
    import os
    import subprocess
    import sys
    from pathlib import Path

    for node in baseline.settings.node_names:
        container = baseline.engine.get(baseline.settings.container(node))
        baseline.engine.exec(container, ["rm", "-f", "/tmp/pwned"])
    assert pwned(baseline) == []
    before = {n.name: (n.release, n.flags) for n in baseline.status().nodes}
    knight = str(Path(sys.executable).with_name("knight"))
    done = subprocess.run(
        [knight, *args],
        env={**os.environ, "KNIGHT_LAB": baseline.settings.lab},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("knight: error: ")
    assert pwned(baseline) == []
    assert {n.name: (n.release, n.flags) for n in baseline.status().nodes} == before


def test_the_api_refuses_a_hostile_value_too(baseline: Lab):
    from toolkit.errors import ConfigError

    for node in baseline.settings.node_names:
        container = baseline.engine.get(baseline.settings.container(node))
        baseline.engine.exec(container, ["rm", "-f", "/tmp/pwned"])
    calls = [
        lambda: flag(baseline, "flag_7", True, HOSTILE),
        lambda: flag(baseline, HOSTILE, False, "rlp"),
        lambda: deploy(baseline, HOSTILE, unsafe=True),
        lambda: deploy(baseline, NEW, skip=["smars-1,!smars-2"], unsafe=True),
        lambda: rollback(baseline, to=HOSTILE, unsafe=True),
    ]
    for call in calls:
        with pytest.raises(ConfigError):
            call()
    assert pwned(baseline) == []
    assert {n.release for n in baseline.status().nodes} == {"7.1.0"}


#: Compiled on the node by its own python3: a module whose import leaves a witness file.
EVIL_PYC = (
    "import py_compile, sys\n"
    "open('/tmp/evil.py', 'w').write(\"open('/tmp/evil-ran', 'w').close()\\n\")\n"
    "py_compile.compile('/tmp/evil.py', cfile=sys.argv[1], doraise=True)\n"
)


def test_stray_bytecode_in_a_staged_release_rolls_the_guarded_deploy_back_naming_it(
    baseline: Lab,
):
    """A sourceless strategy module (`evil.pyc`, real bytecode) dropped beside the staged code
    after the stage step checked it: the router's registry would import it and the tree hash
    would not see it. The flip checks the staged tree again, refuses it naming the file, every
    node goes back to the release it ran, and the module never ran."""
    victim = baseline.engine.get(baseline.settings.container("smars-6"))
    stray = f"/opt/smars/releases/{NEW}/smars/strategies/evil.pyc"
    # whoever may write the releases (the deploy user, once there is one)
    writer = getattr(baseline.settings, "deploy_user", None)
    dropped: list[tuple[int, str]] = []

    def drop(ev) -> None:
        # after every node staged, before any flips
        if ev.kind == "task_start" and ev.task.startswith("Barrier: every node") and not dropped:
            dropped.append(
                baseline.engine.exec(victim, ["python3", "-c", EVIL_PYC, stray], user=writer)
            )

    try:
        result = deploy(baseline, NEW, on_event=drop)
        ran, _ = baseline.engine.exec(victim, ["test", "-e", "/tmp/evil-ran"])
    finally:
        victim.reload()
        if victim.status == "running":
            baseline.engine.exec(victim, ["rm", "-f", stray], user=writer)
            baseline.engine.exec(victim, ["rm", "-f", "/tmp/evil-ran", "/tmp/evil.py"])
    # Never dropped: the deploy ended before its staged barrier (its status and error say why).
    assert dropped and dropped[0][0] == 0, (dropped, result.status, result.error)
    assert result.status == "rolled_back", result
    assert result.error.startswith("smars-6: "), result.error
    assert f"{stray}: bytecode: a release tree holds only the files its hash covers" in (
        result.error
    )
    assert ran != 0, "the stray bytecode ran on smars-6"
    assert {n.release for n in baseline.status().nodes} == {"7.1.0"}
