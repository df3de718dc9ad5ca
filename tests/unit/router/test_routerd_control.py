"""routerd's control pipe, on loopback with the real router: the words a node's deploy user
may say (it may not signal the router itself) to stop, kill, pause and resume the router, and
to start the node again through its entry point, as a container start would. This is how a
fault is done, and undone, on a node reached over ssh."""

from __future__ import annotations

import stat
from pathlib import Path

from router_fixtures import wait_for
from routerd import proc_stat


def say(pipe: Path, word: str) -> None:
    with open(pipe, "w") as f:
        f.write(word + "\n")


def state(pid: int) -> str | None:
    found = proc_stat(pid)
    return None if found is None else found[0]


def test_pause_cont_kill_and_start_on_the_control_pipe(router_factory, tmp_path):
    pipe, marker, entry = tmp_path / "routerd.ctl", tmp_path / "started", tmp_path / "entry"
    entry.write_text(f'#!/bin/sh\necho "$@" > {marker}\n')
    entry.chmod(0o755)
    env = {"SMARS_CONTROL": str(pipe), "SMARS_ENTRYPOINT": str(entry)}
    router = router_factory("7.1.0", supervised=True, env=env)
    pid = router.admin("GET", "/version")[1]["pid"]
    mode = pipe.stat().st_mode
    assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o620  # its group may write, no other

    say(pipe, "pause")
    wait_for(lambda: state(pid) == "T", what="the router stopped by SIGSTOP")
    say(pipe, "cont")
    wait_for(lambda: state(pid) not in ("T", None), what="the router running again")
    router.wait_event("venue_connected")
    assert router.admin("GET", "/health")[0] == 200

    say(pipe, "kill")
    router.wait_event("routerd_held")
    assert state(pid) in (None, "Z")
    assert router.proc.poll() is None  # routerd holds the node down, and stays

    say(pipe, "start")
    assert router.proc.wait(10) == 0  # routerd became the entry point, which here only notes it
    assert marker.read_text().split() == ["router", *router.proc.args[5:]]


def test_an_unknown_word_is_ignored_and_the_router_keeps_trading(router_factory, tmp_path):
    pipe = tmp_path / "routerd.ctl"
    router = router_factory("7.1.0", supervised=True, env={"SMARS_CONTROL": str(pipe)})
    router.wait_event("venue_connected")  # healthy from here (a loaded machine takes a while)
    pid = router.admin("GET", "/version")[1]["pid"]
    say(pipe, "reboot now")
    router.wait_event("routerd_control_unknown", word="reboot now")
    assert router.admin("GET", "/health")[0] == 200
    assert router.admin("GET", "/version")[1]["pid"] == pid  # the same process, never restarted
