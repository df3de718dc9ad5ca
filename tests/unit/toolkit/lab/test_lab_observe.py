"""The observe containers: Prometheus, Alertmanager and the webhook receiver, from their own
image, as non-root users with limits, ports on 127.0.0.1 (published by the engine), the rules
promtool tests placed byte for byte, and every router and the venue as file-based targets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import yaml

from toolkit.lab.observe import (
    ALERTMANAGER_PORT,
    CONFIG_LABEL,
    PROMETHEUS_PORT,
    RECEIVER_PORT,
    observe_specs,
    target_entries,
)
from toolkit.lab.tokens import LabTokens
from toolkit.settings import Settings

ROOT = Path(__file__).resolve().parents[4]
TOKENS = LabTokens("5" * 64)


def specs(settings: Settings | None = None) -> dict:
    return {s.hostname: s for s in observe_specs(settings or Settings(lab="t"), TOKENS)}


def files(spec) -> dict[str, bytes]:
    return {e.path: e.data for _, entries in spec.files for e in entries}


def test_three_containers_each_a_role_of_the_observe_image_under_the_labs_name():
    made = specs()
    assert sorted(made) == ["alertmanager", "prometheus", "receiver"]
    for role, spec in made.items():
        assert spec.name == f"t-{role}"
        assert spec.command == [role]
        assert spec.aliases == (role,)
        assert spec.labels["knight.role"] == role
        assert spec.user == "10001:10001"
    assert made["prometheus"].ports == (PROMETHEUS_PORT,)
    assert made["alertmanager"].ports == (ALERTMANAGER_PORT,)
    assert made["receiver"].ports == (RECEIVER_PORT,)


def test_prometheus_loads_the_very_rules_promtool_tests():
    placed = files(specs()["prometheus"])
    assert placed["rules.yml"] == (ROOT / "monitor" / "prometheus" / "rules.yml").read_bytes()
    config = yaml.safe_load(placed["prometheus.yml"])
    assert config["rule_files"] == ["/etc/knight-observe/rules.yml"]
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    jobs = {j["job_name"]: j["file_sd_configs"][0]["files"] for j in config["scrape_configs"]}
    assert jobs == {
        "smars": ["/etc/knight-observe/targets/smars.json"],
        "venue": ["/etc/knight-observe/targets/venue.json"],
    }
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


def test_alertmanager_sends_every_critical_alert_at_once_to_the_kill_webhook():
    placed = files(specs()["alertmanager"])
    config = yaml.safe_load(placed["alertmanager.yml"])
    (critical,) = config["route"]["routes"]
    assert critical["matchers"] == ['severity="critical"']
    assert critical["receiver"] == "kill"
    assert (critical["group_wait"], critical["group_by"]) == ("0s", ["..."])
    hooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"]}
    assert hooks["kill"]["url"] == "http://receiver:9095/alerts/kill"
    assert hooks["kill"]["http_config"]["authorization"]["credentials_file"] == (
        "/etc/knight-observe/receiver.token"
    )
    assert placed["receiver.token"] == TOKENS.receiver.encode() + b"\n"
    assert specs()["receiver"].env == {"RECEIVER_TOKEN": TOKENS.receiver}


def test_every_router_and_the_venue_are_targets_by_their_names_on_the_lab_network():
    settings = Settings(lab="t", nodes=10)
    written = {
        e.path: json.loads(e.data) for e in target_entries(settings, ["smars-10", "smars-2"])
    }
    assert written["targets/smars.json"] == [
        {"targets": ["smars-2:8001", "smars-10:8001"], "labels": {}}
    ]
    assert written["targets/venue.json"] == [{"targets": ["venue:9100"], "labels": {}}]
    placed = files(specs(settings)["prometheus"])
    assert json.loads(placed["targets/smars.json"])[0]["targets"] == [
        f"smars-{i}:8001" for i in range(1, 11)
    ]


def test_a_change_of_configuration_or_token_changes_the_label_that_recreates_them():
    first = {r: s.labels[CONFIG_LABEL] for r, s in specs().items() if r != "receiver"}
    other = {
        r: s.labels[CONFIG_LABEL]
        for r, s in zip(
            ["prometheus", "alertmanager", "receiver"],
            observe_specs(Settings(lab="t"), LabTokens("6" * 64)),
            strict=True,
        )
        if r != "receiver"
    }
    assert first["prometheus"] == other["prometheus"]
    assert first["alertmanager"] != other["alertmanager"]
    bigger = specs(Settings(lab="t", nodes=9))["prometheus"].labels[CONFIG_LABEL]
    assert bigger != first["prometheus"]


def test_the_observe_image_is_the_lab_images_tag_with_observe():
    assert Settings(image="knight-lab:kprom").observe_image == "knight-lab:kprom-observe"
    assert Settings(image="knight-lab:latest").observe_image == "knight-lab:latest-observe"
    assert Settings(image="knight-lab").observe_image == "knight-lab:latest-observe"
    assert replace(Settings(), image="reg:5000/lab").observe_image == "reg:5000/lab:latest-observe"
