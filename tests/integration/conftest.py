"""A real lab on the local Docker engine for the whole session, reset to baseline per test, and
knight's own runs of the shipped experiments, each made once per session."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from helpers import NODE, OBSERVE_IMAGE

from toolkit.experiments.loader import load_experiment
from toolkit.experiments.run import RunResult, run_experiment
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.settings import load_settings


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.nodeid.startswith("tests/integration/test_observe.py") for item in session.items):
        OBSERVE_IMAGE.start(load_settings())


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


@pytest.fixture(scope="session")
def own_run(lab: Lab) -> Callable[..., RunResult]:
    """`own_run(exp_id, mode, **sets)`: knight's own run of a shipped experiment with its faulty
    node on NODE, made the first time a test asks for it and read from then on. The tests of
    the experiments and those that compare a `chaos run` with knight's verdict share each run:
    a run is about a minute on a loaded machine. Its journal is what the tests read (the lab
    has moved on since)."""
    made: dict[tuple[str, str, tuple[tuple[str, str], ...]], RunResult] = {}

    def run(exp_id: str, mode: str, **sets: str) -> RunResult:
        key = (exp_id, mode, tuple(sorted(sets.items())))
        if key not in made:
            exp = load_experiment(exp_id, {"node": NODE, **sets})
            made[key] = run_experiment(lab, exp, mode)
        return made[key]

    return run
