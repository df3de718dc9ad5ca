"""The Prometheus twin of the monitor's rules (monitor/prometheus/rules.yml) cannot drift from
the Python rules, uses only metrics the router exposes, and passes its own promtool tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from monitor_fixtures import metrics_text

from toolkit.monitor import default_rules

ROOT = Path(__file__).resolve().parents[4]
PROMETHEUS = ROOT / "monitor" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
PROMTOOL = shutil.which("promtool")


def prometheus_alerts() -> dict[str, dict]:
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def seconds(duration: str | None) -> float:
    if duration is None:
        return 0.0
    m = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert m, duration
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]


def test_the_prometheus_file_has_exactly_the_python_rules():
    assert sorted(prometheus_alerts()) == sorted(r.name for r in default_rules())


@pytest.mark.parametrize("rule", default_rules(), ids=lambda r: r.name)
def test_each_prometheus_alert_has_the_python_rules_labels_runbook_and_hold(rule):
    alert = prometheus_alerts()[rule.name]
    assert alert["labels"] == {
        "severity": rule.severity,
        "owner": rule.owner,
        "action": rule.action,
    }
    assert alert["annotations"]["runbook"] == rule.runbook
    assert seconds(alert.get("for")) == rule.for_s


def test_the_prometheus_rules_use_only_metrics_the_router_exposes():
    exposed = metrics_text(
        tree="t",
        flags={"flag_7": {"value": True, "meaning": "rlp", "code_meaning": "rlp"}},
        errors={"flag_meaning": 1},
    )
    names = {line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line[0] != "#"}
    used = {m for a in prometheus_alerts().values() for m in re.findall(r"smars_\w+", a["expr"])}
    assert used <= names
    assert used == {
        "smars_info",
        "smars_flag_value",
        "smars_overfill_shares_total",
        "smars_child_orders_total",
        "smars_errors_total",
        "smars_flag_errors_total",
    }


def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    # A missing promtool fails this test: `make test` installs it (Debian's prometheus).
    assert PROMTOOL is not None, (
        "promtool is not installed: `make promtool` (Debian: apt-get install prometheus)"
    )
    check = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "rules_test.yml"],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
