"""A journal never contains a secret: secret-named keys and the lab token are scrubbed out."""

import json

from toolkit.experiments.journal import Journal, scrub

TOKEN = "s3cr3t-lab-token-0123"


def test_scrub_drops_secret_named_keys_at_any_depth():
    doc = {
        "node": "smars-1",
        "Authorization": "Bearer abc",
        "admin": {"token": "abc", "url": "http://127.0.0.1:8001", "db_password": "pw"},
        "list": [{"api_key": "k", "ok": 1}, {"X-Auth-Token": "t"}],
        "client_secret": "s",
    }
    assert scrub(doc) == {
        "node": "smars-1",
        "admin": {"url": "http://127.0.0.1:8001"},
        "list": [{"ok": 1}, {}],
    }


def test_scrub_drops_strings_equal_to_a_secret_and_redacts_it_inside_text():
    doc = {
        "detail": TOKEN,
        "args": ["--token-file", TOKEN, "x"],
        "log": f"curl -H 'X-Knight: {TOKEN}' /admin/kill",
    }
    assert scrub(doc, [TOKEN, ""]) == {
        "args": ["--token-file", "x"],
        "log": "curl -H 'X-Knight: [redacted]' /admin/kill",
    }


def test_a_written_journal_does_not_contain_the_token(tmp_path):
    j = Journal("skipped_node", "guarded", parameters={"node": "smars-8", "token": TOKEN})
    j.event("kill", None, f"POST /kill with {TOKEN}")
    j.event("flag", "smars-1", TOKEN)
    j.finish("completed", False)
    path = j.write(tmp_path / "j.json", secrets=[TOKEN])
    text = path.read_text()
    assert TOKEN not in text
    doc = json.loads(text)
    assert doc["parameters"] == {"node": "smars-8"}
    assert doc["timeline"][0]["detail"] == "POST /kill with [redacted]"
    assert "detail" not in doc["timeline"][1]
