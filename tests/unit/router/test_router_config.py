"""router.json: defaults, strict checking, and the config hash."""

from __future__ import annotations

import json

import pytest
from smars.config import Config, load_config
from smars.errors import ConfigError


def write(tmp_path, doc) -> str:
    path = tmp_path / "router.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_every_key_is_optional(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARS_NODE", "smars-4")
    config = load_config(write(tmp_path, {}))
    assert config == Config(node="smars-4")
    assert (config.order_port, config.admin_port, config.venue_address) == (
        7001,
        8001,
        ("venue", 9000),
    )
    assert (config.slice_qty, config.peg_interval_ms, config.peg_max_children_per_s) == (
        100,
        20,
        500,
    )
    assert config.current_path == "/opt/smars/current"


def test_the_file_node_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SMARS_NODE", "from-env")
    assert load_config(write(tmp_path, {"node": "smars-1"})).node == "smars-1"


def test_overrides_replace_file_values(tmp_path):
    config = load_config(
        write(tmp_path, {"node": "a", "flags_path": "/x"}), {"flags_path": str(tmp_path)}
    )
    assert config.flags_path == str(tmp_path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"nodes": "a"}, "unknown key 'nodes'"),
        ({"order_port": "7001"}, "order_port: expected an integer, got string"),
        ({"order_port": True}, "order_port: expected an integer, got boolean"),
        ({"order_port": 70000}, "order_port: expected 0..65535"),
        ({"slice_qty": 0}, "slice_qty: expected 1..1000000"),
        ({"drain_timeout_s": "2"}, "drain_timeout_s: expected a number"),
        ({"venue": "venue"}, "venue: expected host:port"),
        ({"flags_path": ""}, "flags_path: expected a non-empty string"),
        ({"node": "bad name"}, "node: expected"),
        ([], "expected a JSON object"),
        ('{"node": "a",\n "order_port": }', "line 2 column"),
    ],
)
def test_a_bad_config_is_one_clear_error_naming_file_and_key(tmp_path, doc, message):
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert path in str(caught.value)


def test_an_explicit_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "absent.json"))


def test_port_zero_means_any_free_port(tmp_path):
    assert load_config(write(tmp_path, {"node": "a", "order_port": 0})).order_port == 0


def test_the_config_hash_ignores_the_node_name_only(tmp_path):
    one = load_config(write(tmp_path, {"node": "smars-1"}))
    two = load_config(write(tmp_path, {"node": "smars-2"}))
    assert one.config_hash() == two.config_hash()
    other = load_config(write(tmp_path, {"node": "smars-1", "slice_qty": 50}))
    assert other.config_hash() != one.config_hash()


def test_the_config_hash_is_sha256_of_the_canonical_settings(tmp_path):
    import hashlib
    from dataclasses import asdict

    config = load_config(write(tmp_path, {"node": "n"}))
    settings = {k: v for k, v in asdict(config).items() if k != "node"}
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    assert config.config_hash() == hashlib.sha256(canonical).hexdigest()


def test_the_order_port_and_venue_limits_have_safe_defaults(tmp_path):
    config = load_config(write(tmp_path, {"node": "a"}))
    assert (config.max_order_connections, config.order_idle_s, config.venue_silence_s) == (
        256,
        60.0,
        5.0,
    )
    # No one connection may take every working slot: by default a quarter of them.
    assert (config.max_working, config.working_per_connection) == (20000, 5000)
    small = load_config(write(tmp_path, {"node": "a", "max_working": 2}))
    assert small.working_per_connection == 1
    set_ = load_config(write(tmp_path, {"node": "a", "max_working_per_connection": 7}))
    assert set_.working_per_connection == 7


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"max_working": 10, "max_working_per_connection": 10}, "expected less than max_working"),
        ({"max_working_per_connection": 0}, "max_working_per_connection: expected 1.."),
        ({"max_order_connections": 0}, "max_order_connections: expected 1..65536"),
        ({"order_idle_s": 0}, "order_idle_s: expected more than 0 seconds"),
        ({"order_idle_s": float("nan")}, "order_idle_s: expected a number of seconds"),
        ({"venue_silence_s": -1}, "venue_silence_s: expected 0..600 seconds"),
        ({"venue_silence_s": 1e308 * 10}, "venue_silence_s: expected a number of seconds"),
    ],
)
def test_the_limits_are_checked(tmp_path, doc, message):
    path = write(tmp_path, json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert path in str(caught.value)
