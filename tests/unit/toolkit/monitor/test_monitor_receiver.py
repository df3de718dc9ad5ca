"""The Prometheus path's last two hops, with the real webhook receiver (monitor/image/receiver.py,
run here as the observe image runs it) and knight's AlertReceiver reading it over HTTP: an alert
of the `kill` webhook throws the kill switch once, one of the `page` webhook is only recorded,
and nothing reaches the receiver or leaves it without the lab's receiver token."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import LabError
from toolkit.lab.admin import AdminClient
from toolkit.monitor import AlertReceiver, KillSwitch, Record
from toolkit.monitor.receiver import wait_quiet
from toolkit.monitor.webhook import alerts_of, epoch

ROOT = Path(__file__).resolve().parents[4]
RECEIVER = ROOT / "monitor" / "image" / "receiver.py"
TOKEN = "r" * 64


def notification(alertname: str = "overfill", node: str = "smars-8", severity: str = "critical",
                 starts: str = "2026-08-01T13:30:00.123456789Z", status: str = "firing") -> dict:  # fmt: skip
    """A body as Alertmanager 0.25's webhook sends it (version 4)."""
    return {
        "version": "4",
        "status": status,
        "receiver": "kill",
        "groupLabels": {"alertname": alertname},
        "alerts": [
            {
                "status": status,
                "labels": {
                    "alertname": alertname,
                    "instance": f"{node}:8001",
                    "job": "smars",
                    "node": node,
                    "severity": severity,
                    "owner": "trading-risk" if severity == "critical" else "platform",
                    "action": "kill" if severity == "critical" else "page",
                },
                "annotations": {
                    "runbook": f"docs/runbooks/{alertname}.md",
                    "summary": f"{node}: overfill or Power Peg child orders",
                },
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver_url():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(RECEIVER), str(port)],
        env={"RECEIVER_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the receiver did not start")
            time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait(timeout=10)


def post(url: str, receiver: str, body: Any, token: str | None = TOKEN) -> int:
    req = urllib.request.Request(
        f"{url}/alerts/{receiver}", data=json.dumps(body).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


class Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.posts: list[str] = []

    def post(self, path: str, body: Any = None) -> Any:
        self.posts.append(path)
        return {"trading": "killed"}


def test_alertmanagers_body_reads_as_the_monitors_alert():
    (alert,) = alerts_of(notification())
    assert (alert.rule, alert.node, alert.severity, alert.owner, alert.action) == (
        "overfill",
        "smars-8",
        "critical",
        "trading-risk",
        "kill",
    )
    assert alert.runbook == "docs/runbooks/overfill.md"
    assert alert.raised == alert.t == pytest.approx(epoch("2026-08-01T13:30:00.123456Z"))
    assert epoch("2026-08-01T13:30:00Z") == 1_785_591_000.0


def test_resolved_alerts_and_bodies_that_are_not_alertmanagers_raise_nothing():
    assert alerts_of(notification(status="resolved")) == []
    assert alerts_of("not json") == []
    assert alerts_of({"alerts": [None, 3]}) == []


def test_an_alert_of_the_kill_webhook_throws_the_kill_switch_once(receiver_url, tmp_path):
    nodes = [Node(f"smars-{i}") for i in range(1, 9)]
    record = Record(tmp_path / "prometheus-alerts.jsonl")
    inbox = AdminClient.at("receiver", receiver_url, TOKEN, timeout=10)
    # Sent before the watch started: not this watch's.
    assert post(receiver_url, "kill", notification(node="smars-1")) == 200
    watcher = AlertReceiver(inbox, [record], KillSwitch(nodes, record), wait_s=0.5).start()
    try:
        assert post(receiver_url, "page", notification("node_down", severity="warning")) == 200
        assert post(receiver_url, "kill", notification()) == 200
        assert post(receiver_url, "kill", notification()) == 200  # Alertmanager sent it again
        deadline = time.monotonic() + 30
        while len(watcher.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        result = watcher.stop()
    assert [(a.rule, a.node) for a in result.alerts] == [
        ("node_down", "smars-8"),
        ("overfill", "smars-8"),
    ]
    (kill,) = result.kills
    assert kill.trigger == ["overfill@smars-8"] and kill.ok
    assert all(n.posts == ["/kill"] for n in nodes)
    assert sorted(watcher.received) == [2, 3, 4]
    assert watcher.kill_notified == [watcher.received[3]]  # the page webhook's is not a kill
    kinds = [line["kind"] for line in record.read()]
    assert kinds == ["alert", "alert", "kill"]


def test_the_page_webhook_never_kills(receiver_url):
    nodes = [Node("smars-1")]
    inbox = AdminClient.at("receiver", receiver_url, TOKEN, timeout=10)
    watcher = AlertReceiver(inbox, [], KillSwitch(nodes), wait_s=0.5).start()
    post(receiver_url, "page", notification())  # critical, but not routed to the kill webhook
    deadline = time.monotonic() + 30
    while not watcher.alerts and time.monotonic() < deadline:
        time.sleep(0.05)
    result = watcher.stop()
    assert [a.rule for a in result.alerts] == ["overfill"]
    assert result.kills == [] and nodes[0].posts == []


def test_the_receiver_asks_for_the_labs_token(receiver_url):
    assert post(receiver_url, "kill", notification(), token=None) == 401
    assert post(receiver_url, "kill", notification(), token="x" * 64) == 401
    assert post(receiver_url, "Bad_Name", notification()) == 404
    stranger = AdminClient.at("receiver", receiver_url, "x" * 64, timeout=5)
    assert stranger.request("GET", "/notifications?since=0").status == 401
    with pytest.raises(LabError, match="answered 401"):
        AlertReceiver(stranger).start()


def test_a_poll_waits_for_the_next_notification(receiver_url):
    inbox = AdminClient.at("receiver", receiver_url, TOKEN, timeout=10)
    watcher = AlertReceiver(inbox, wait_s=5)
    started = time.monotonic()
    assert watcher.poll(wait_s=0.3) == []
    assert time.monotonic() - started >= 0.3
    post(receiver_url, "kill", notification())
    assert [a.rule for a in watcher.poll(wait_s=5)] == ["overfill"]


class Alertmanager:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get(self, path: str) -> Any:
        self.asked.append(path)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_a_watch_waits_for_the_last_runs_critical_alerts_to_resolve():
    still = [{"labels": {"alertname": "overfill"}}]
    am = Alertmanager([still, still, []])
    wait_quiet(am, timeout=30)
    assert len(am.asked) == 3
    assert "filter=severity%3D%22critical%22" in am.asked[0]
    with pytest.raises(LabError, match=r"still active after 0s \(overfill\)"):
        wait_quiet(Alertmanager([still]), timeout=0)
