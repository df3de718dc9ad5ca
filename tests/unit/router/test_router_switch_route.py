"""POST /switch: the release switch asked over the admin API, as SIGUSR2 asks it. A node's deploy
user is not the router's (it owns the releases the router may only read), and no container has
CAP_KILL: it cannot signal the router, so the node agent asks this instead."""

from __future__ import annotations

import contextlib

from router_fixtures import TOKEN, point, wait_for
from smars.release import tree_hash


def _release(router) -> str | None:
    with contextlib.suppress(OSError):
        return router.admin("GET", "/version")[1].get("release")
    return None  # between two processes


def test_a_post_switch_switches_to_what_current_points_at(router_factory, releases):
    router = router_factory("7.1.0")
    before = router.admin("GET", "/version")[1]
    point(router.current, releases["8.0.1"])
    status, body = router.admin("POST", "/switch", token=TOKEN)
    assert (status, body) == (200, {"switching": True, "pid": before["pid"]})
    wait_for(lambda: _release(router) == "8.0.1", what="the router on 8.0.1")
    assert router.admin("GET", "/version")[1]["tree"] == tree_hash(releases["8.0.1"])


def test_a_post_switch_needs_the_node_s_token(router_factory, releases):
    router = router_factory("7.1.0")
    point(router.current, releases["8.0.1"])
    assert router.admin("POST", "/switch")[0] == 401
    assert router.admin("POST", "/switch", token="not-" + TOKEN)[0] == 401
    assert router.admin("GET", "/version")[1]["release"] == "7.1.0"
