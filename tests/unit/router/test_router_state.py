"""Kill switch and intake persisted across restarts."""

from __future__ import annotations

import json

from smars.state import State


def test_a_fresh_node_trades_and_accepts(tmp_path):
    state = State(tmp_path / "state.json")
    state.load()
    assert (state.trading, state.intake, state.error) == ("active", "open", None)


def test_switches_survive_a_restart(tmp_path):
    path = tmp_path / "sub" / "state.json"
    State(path).set(trading="killed", intake="paused")
    again = State(path)
    again.load()
    assert (again.trading, again.intake) == ("killed", "paused")
    assert json.loads(path.read_text()) == {"trading": "killed", "intake": "paused"}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp file left


def test_the_pause_of_a_release_switch_is_never_persisted(tmp_path):
    path = tmp_path / "state.json"
    state = State(path)
    state.switching = True
    state.set(trading="active")
    assert state.effective_intake == "paused"
    assert json.loads(path.read_text())["intake"] == "open"


def test_an_unreadable_state_file_fails_closed(tmp_path):
    path = tmp_path / "state.json"
    for content in ["garbage", '{"trading": "maybe", "intake": "open"}']:
        path.write_text(content)
        state = State(path)
        state.load()
        assert state.killed
        assert str(path) in state.error
