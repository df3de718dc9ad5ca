"""What an activity is called with: the configuration names the lab and the guards; knight's
runner binds its own lab and run for the run's duration; bad values are one line."""

from __future__ import annotations

import pytest

from toolkit.errors import ConfigError
from toolkit.experiments.context import Context, bound, configuration_for, context
from toolkit.guards.sets import GuardSet
from toolkit.lab.lab import Lab
from toolkit.settings import settings_for_lab


def test_the_configuration_names_the_lab_and_the_guards():
    ctx = context({"knight_lab": "kctk-unit", "knight_guards": "atomic,flags"})
    assert ctx.lab.settings.lab == "kctk-unit"
    assert ctx.guards == GuardSet.of(["atomic", "flags"])
    assert context({"knight_lab": "kctk-unit", "knight_guards": "none"}).guards == GuardSet()


def test_knights_runner_gets_its_own_lab_and_run_while_bound_and_not_after():
    lab = Lab(settings_for_lab("kctk-unit-bound"))
    mine = Context(lab, GuardSet.all())
    config = configuration_for(lab, GuardSet.all())
    assert config == {
        "knight_lab": "kctk-unit-bound",
        "knight_guards": ",".join(GuardSet.all().names),
    }
    with bound(mine):
        assert context(config) is mine
    assert context(config) is not mine


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"knight_lab": "Bad Name"}, "lab name 'Bad Name': use 1-32 of a-z"),
        (
            {"knight_lab": "kctk-unit", "knight_guards": "atomik"},
            "configuration knight_guards: unknown guard 'atomik'",
        ),
        ({"knight_lab": "kctk-unit", "knight_guards": 7}, "configuration knight_guards:"),
    ],
)
def test_a_bad_configuration_is_one_line(config, message):
    with pytest.raises(ConfigError) as info:
        context(config)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
