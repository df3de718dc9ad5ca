"""What alerts lead to: guarded, the kill switch on every node at once; the 2012 way, an e-mail
in a mailbox nobody reads and nothing else; in both, a JSONL record with timestamps."""

from __future__ import annotations

import json
import mailbox
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from monitor_fixtures import metrics_text as monitor_metrics

from toolkit.errors import LabError
from toolkit.lab.admin import AdminClient
from toolkit.monitor import Alert, KillSwitch, Mailbox, Monitor, Record, watch

NODES = [f"smars-{i}" for i in range(1, 9)]


def alert(action: str = "kill", node: str = "smars-3", rule: str = "overfill") -> Alert:
    return Alert(
        t=1_700_000_000.0,
        raised=1_700_000_000.2,
        rule=rule,
        node=node,
        severity="critical" if action == "kill" else "warning",
        owner="trading-risk",
        runbook=f"docs/runbooks/{rule}.md",
        action=action,
        summary=f"{node}: 40 child orders from power_peg, which never checks executions, in 5 s",
        value=40.0,
    )


def metrics_text(name: str, power_peg: int) -> str:
    return monitor_metrics(node=name, children={"sor": 0, "power_peg": power_peg})


class Node:
    """A node's admin API; `post` takes `delay` seconds, as a busy node's might."""

    def __init__(self, name: str, delay: float = 0.0, fails: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fails = fails
        self.power_peg = 0
        self.posts: list[tuple[str, float]] = []

    def metrics(self) -> str:
        return metrics_text(self.name, self.power_peg)

    def post(self, path: str, body=None):
        time.sleep(self.delay)
        if self.fails:
            raise LabError(f"{self.name}: admin API at http://127.0.0.1:1 did not answer: refused")
        self.posts.append((path, time.time()))
        return {"trading": "killed", "cancelled": 2}


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


# -- KillSwitch ------------------------------------------------------------------------------


def test_kill_switch_posts_kill_to_every_node_of_the_fleet_concurrently():
    nodes = [Node(n, delay=0.2) for n in NODES]
    switch = KillSwitch(nodes)
    try:
        switch.handle([alert("kill", node="smars-3")])
    finally:
        switch.close()
    [kill] = switch.kills
    assert [n.posts[0][0] for n in nodes] == ["/kill"] * 8
    assert kill.done - kill.t < 0.6  # eight 0.2 s answers side by side, not one after another
    assert kill.trigger == ["overfill@smars-3"]
    assert kill.ok
    assert kill.nodes["smars-7"]["answer"] == {"trading": "killed", "cancelled": 2}
    assert all(kill.t <= kill.nodes[n]["t"] <= kill.done for n in NODES)


def test_a_node_that_does_not_answer_the_kill_is_recorded_and_the_others_are_still_killed():
    nodes = [Node(n, fails=(n == "smars-5")) for n in NODES]
    switch = KillSwitch(nodes)
    kill = switch.kill(["overfill@smars-3"])
    switch.close()
    assert not kill.ok
    assert kill.nodes["smars-5"]["ok"] is False
    assert "did not answer" in kill.nodes["smars-5"]["error"]
    assert sum(1 for n in nodes if n.posts) == 7


def test_kill_switch_leaves_pages_to_people():
    nodes = [Node(n) for n in NODES]
    switch = KillSwitch(nodes)
    switch.handle([alert("page", rule="version_drift")])
    switch.close()
    assert switch.kills == []
    assert all(n.posts == [] for n in nodes)


# -- Record and Mailbox ----------------------------------------------------------------------


def test_record_writes_every_alert_and_kill_as_a_json_line_with_its_timestamps(tmp_path):
    record = Record(tmp_path / "monitor" / "alerts.jsonl")
    switch = KillSwitch([Node("smars-1")], record)
    record.handle([alert("kill")])
    switch.handle([alert("kill")])
    switch.close()
    lines = [json.loads(line) for line in record.path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["alert", "kill"]
    assert lines[0]["t"] == 1_700_000_000.0 and lines[0]["raised"] == 1_700_000_000.2
    assert lines[0]["owner"] == "trading-risk"
    assert lines[0]["runbook"] == "docs/runbooks/overfill.md"
    assert lines[1]["trigger"] == ["overfill@smars-3"] and lines[1]["ok"] is True
    assert lines[1]["nodes"]["smars-1"]["answer"]["trading"] == "killed"


def test_mailbox_appends_each_alert_as_an_email_to_its_owner(tmp_path):
    box = Mailbox(tmp_path / "mailbox.mbox")
    box.handle([alert("kill"), alert("page", rule="error_burst", node="smars-8")])
    messages = list(mailbox.mbox(tmp_path / "mailbox.mbox"))
    assert [m["Subject"] for m in messages] == [
        "[critical] overfill on smars-3",
        "[warning] error_burst on smars-8",
    ]
    assert messages[0]["To"] == "trading-risk@knight.lab"
    body = messages[0].get_payload()
    assert "40 child orders from power_peg" in body
    assert "runbook:    docs/runbooks/overfill.md" in body
    assert box.sent == 2


# -- watch(): the two modes against a lab ----------------------------------------------------


class FakeLab:
    def __init__(self, tmp_path) -> None:
        self.nodes = {n: Node(n) for n in NODES}
        self.settings = SimpleNamespace(node_names=list(NODES), reports=tmp_path / "reports")

    def node_admin(self, name: str, timeout: float = 2.0) -> Node:
        return self.nodes[name]


def runaway(monitor: Monitor, lab: FakeLab, clock: Clock) -> None:
    monitor.clock = clock
    clock.t += 0.2
    monitor.poll()
    lab.nodes["smars-3"].power_peg += 40
    clock.t += 0.2
    monitor.poll()


def test_2012_mode_alerts_go_to_a_mailbox_and_nothing_acts(tmp_path):
    lab = FakeLab(tmp_path)
    monitor = watch(lab, acting=False, start=False)
    runaway(monitor, lab, Clock())
    result = monitor.stop()
    assert [(a.rule, a.node) for a in result.alerts] == [("overfill", "smars-3")]
    assert result.kills == []
    assert all(n.posts == [] for n in lab.nodes.values())
    out = tmp_path / "reports" / "monitor"
    [mail] = list(mailbox.mbox(out / "mailbox.mbox"))
    assert mail["Subject"] == "[critical] overfill on smars-3"
    assert [json.loads(x)["kind"] for x in (out / "alerts.jsonl").read_text().splitlines()] == [
        "alert"
    ]


def test_guarded_mode_a_critical_alert_kills_every_node(tmp_path):
    lab = FakeLab(tmp_path)
    monitor = watch(lab, acting=True, out_dir=tmp_path / "run1", start=False)
    runaway(monitor, lab, Clock())
    result = monitor.stop()
    assert [(a.rule, a.node) for a in result.alerts] == [("overfill", "smars-3")]
    assert len(result.kills) == 1 and result.kills[0].ok
    assert all([p for p, _ in n.posts] == ["/kill"] for n in lab.nodes.values())
    assert not (tmp_path / "run1" / "mailbox.mbox").exists()
    lines = (tmp_path / "run1" / "alerts.jsonl").read_text().splitlines()
    kinds = [json.loads(x)["kind"] for x in lines]
    assert kinds == ["alert", "kill"]
    assert result.to_json()["kills"][0]["trigger"] == ["overfill@smars-3"]
    timeline = result.timeline()
    assert [(e["kind"], e["node"]) for e in timeline] == [("alert", "smars-3"), ("kill", None)]
    assert timeline[0]["detail"]["rule"] == "overfill"
    assert timeline[1]["detail"]["nodes"] == dict.fromkeys(NODES, True)


# -- over real HTTP, with the toolkit's admin client ------------------------------------------


class Router(BaseHTTPRequestHandler):
    """GET /metrics and POST /kill (token required), as a router's admin port answers them."""

    def do_GET(self):
        state = self.server.state
        body = metrics_text(state["name"], state["power_peg"]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.path == "/kill" and self.headers["Authorization"] == "Bearer s3cret"
        self.server.state["kills"] += ok
        body = json.dumps({"trading": "killed"} if ok else {"error": "unauthorized"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def routers():
    servers = []
    for name in ("smars-1", "smars-2"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Router)
        server.state = {"name": name, "power_peg": 0, "kills": 0}
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_over_http_the_monitor_scrapes_and_kills_through_the_admin_api(routers):
    def clients():
        return [
            AdminClient(s.state["name"], s.server_address[1], "s3cret", timeout=1.0)
            for s in routers
        ]

    switch = KillSwitch(clients())
    monitor = Monitor(clients(), actions=[switch], clock=Clock(), scrape_timeout_s=60)
    monitor.clock.t += 0.2
    monitor.poll()
    routers[1].state["power_peg"] = 7
    monitor.clock.t += 0.2
    raised = monitor.poll()
    monitor.stop()
    assert [(a.rule, a.node, a.value) for a in raised] == [("overfill", "smars-2", 7.0)]
    assert [s.state["kills"] for s in routers] == [1, 1]
    assert switch.kills[0].nodes["smars-1"] == {
        "ok": True,
        "t": switch.kills[0].nodes["smars-1"]["t"],
        "answer": {"trading": "killed"},
    }
