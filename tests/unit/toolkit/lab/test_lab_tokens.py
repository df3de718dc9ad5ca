"""Each node has its own admin token and the venue its own, all derived from one lab secret that
the lab keeps (a label on its venue container); one per-lab hello token for the venue."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from lab_fakes import engine_with, lab_container, tiny_artifact

from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.lab.specs import SECRET_LABEL, lab_specs
from toolkit.lab.tokens import LabTokens
from toolkit.settings import Settings

SECRET = "5" * 64
NODES = [f"smars-{i}" for i in range(1, 33)]


def test_every_node_and_the_venue_have_a_token_of_their_own():
    tokens = LabTokens(SECRET)
    every = [tokens.node(n) for n in NODES] + [tokens.venue, tokens.hello, tokens.secret]
    assert len(set(every)) == len(every)
    assert all(len(t) == 64 for t in every)


def test_a_token_is_the_hmac_of_the_lab_secret_so_the_toolkit_derives_any():
    expected = hmac.new(SECRET.encode(), b"node-admin:smars-3", hashlib.sha256).hexdigest()
    assert LabTokens(SECRET).node("smars-3") == expected
    assert LabTokens(SECRET).node("smars-3") != LabTokens("6" * 64).node("smars-3")


def test_the_secret_is_never_shown():
    assert SECRET not in repr(LabTokens(SECRET))


def test_each_container_gets_its_own_token_and_the_lab_hello(tmp_path):
    tokens = LabTokens(SECRET)
    settings = Settings(lab="t", nodes=3)
    specs = {
        s.hostname: s
        for s in lab_specs(
            settings, tiny_artifact(tmp_path), tokens=tokens, flags={}, guards=GuardSet()
        )
    }
    for node in ("smars-1", "smars-2", "smars-3"):
        assert specs[node].env == {
            "SMARS_ADMIN_TOKEN": tokens.node(node),
            "SMARS_VENUE_TOKEN": tokens.hello,
            "SMARS_NODE": node,
        }
    assert specs["venue"].env == {
        "VENUE_ADMIN_TOKEN": tokens.venue,
        "VENUE_HELLO_TOKEN": tokens.hello,
    }
    # The secret itself is in no container's environment: only in the venue's labels.
    every_env = [v for s in specs.values() for v in s.env.values()]
    assert SECRET not in every_env
    assert specs["venue"].labels[SECRET_LABEL] == SECRET
    assert [s for s in specs.values() if SECRET_LABEL in s.labels] == [specs["venue"]]


@pytest.fixture
def lab() -> Lab:
    ports = {"NetworkSettings": {"Ports": {"8001/tcp": [{"HostPort": "40001"}]}}}
    venue_ports = {"NetworkSettings": {"Ports": {"9100/tcp": [{"HostPort": "40100"}]}}}
    venue = lab_container("t", "venue", **{"knight.role": "venue", SECRET_LABEL: SECRET})
    venue.attrs.update(venue_ports)
    node = lab_container("t", "smars-2", **{"knight.role": "router", "knight.node": "smars-2"})
    node.attrs.update(ports)
    return Lab(Settings(lab="t", nodes=3), engine=engine_with("t", venue, node))


def test_the_lab_reads_its_secret_back_from_its_venue(lab: Lab):
    assert lab.token == SECRET
    assert lab.tokens == LabTokens(SECRET)


def test_a_node_s_admin_client_carries_that_node_s_token_and_the_venue_s_its_own(lab: Lab):
    tokens = LabTokens(SECRET)
    assert lab.node_admin("smars-2")._token == tokens.node("smars-2")
    assert lab.venue_admin()._token == tokens.venue
    assert lab.node_admin("smars-2")._token != lab.venue_admin()._token


def test_the_secrets_to_scrub_are_every_token_of_the_lab(lab: Lab):
    tokens = LabTokens(SECRET)
    assert set(lab.secrets) == {
        SECRET,
        tokens.venue,
        tokens.hello,
        tokens.receiver,
        tokens.node("smars-1"),
        tokens.node("smars-2"),
        tokens.node("smars-3"),
    }


def test_a_new_lab_gets_a_new_secret():
    lab = Lab(Settings(lab="t", nodes=3), engine=engine_with("t"))
    other = Lab(Settings(lab="t", nodes=3), engine=engine_with("t"))
    assert len(lab.token) == 64 and lab.token != other.token
