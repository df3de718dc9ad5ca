"""A real lab on the local Docker engine for the whole session, reset to baseline per test."""

from __future__ import annotations

import os

import pytest

from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.settings import load_settings


@pytest.fixture(scope="session")
def lab() -> Lab:
    settings = load_settings()
    lab = Lab(settings)
    if not lab.engine.image_exists(settings.image):
        pytest.fail(f"the lab image {settings.image} is missing: run `make image` (make test does)")
    lab.up()
    yield lab
    if os.environ.get("KNIGHT_KEEP_LAB") != "1":
        lab.down()


@pytest.fixture
def baseline(lab: Lab) -> Lab:
    """The lab on its baseline (release, flags, trading, intake) with a fresh venue run, and no
    guard in the routers: the 2012 fleet, which the tests of a guard then arm one by one."""
    lab.reset(GuardSet())
    return lab
