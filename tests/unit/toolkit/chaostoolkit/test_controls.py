"""The controls. Refusal: a refused method step stops the method (its later knight actions become
`skipped`, the close of the market excepted); a step named in `continue_after` lets it go on;
the rollbacks always run. Guards: a lab it cannot prepare interrupts the experiment."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution

from toolkit.chaostoolkit.controls import guards, refusal

ACTIONS = "toolkit.chaostoolkit.actions"


def _action(name: str, func: str) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {"type": "python", "module": ACTIONS, "func": func},
    }


def _play(
    steps: list[tuple[dict[str, Any], str]], continue_after: list[str] | None = None
) -> list[str]:
    """Run the control over steps (activity, the status its action returns); the funcs run."""
    ran = []
    for activity, status in steps:
        refusal.before_activity_control(activity)
        ran.append(activity["provider"]["func"])
        state = {"output": {"status": status}}
        refusal.after_activity_control(activity, state=state, continue_after=continue_after)
    return ran


def test_a_refused_deploy_stops_the_method_but_not_the_close_nor_the_rollbacks():
    refusal.before_experiment_control({})
    refusal.before_method_control({})
    method = [
        (_action("method-1-deploy", "deploy"), "refused"),
        (_action("method-2-flag", "flag"), "done"),
        (_action("method-3-open", "open_market"), "done"),
        (_action("method-4-close", "close_market"), "done"),
    ]
    assert _play(method) == ["deploy", "skipped", "skipped", "close_market"]
    assert method[1][0]["provider"]["arguments"] == {
        "activity": "method-2-flag",
        "reason": "method stopped: method-1-deploy was refused",
    }
    refusal.before_rollback_control({})
    assert _play([(_action("rollback-1-kill", "kill"), "done")]) == ["kill"]


def test_a_step_marked_continue_lets_the_method_go_on():
    refusal.before_experiment_control({})
    refusal.before_method_control({})
    method = [
        (_action("method-5-rollback", "rollback"), "refused"),
        (_action("method-6-wait", "wait"), "done"),
    ]
    assert _play(method, continue_after=["method-5-rollback"]) == ["rollback", "wait"]


def test_a_new_experiment_starts_unstopped():
    refusal.before_experiment_control({})
    refusal.before_method_control({})
    _play([(_action("method-1-deploy", "deploy"), "refused")])
    refusal.before_experiment_control({})
    refusal.before_method_control({})
    assert _play([(_action("method-1-flag", "flag"), "done")]) == ["flag"]


def test_a_guards_control_that_cannot_prepare_the_lab_interrupts_the_experiment():
    """chaoslib only logs a control's ordinary error and runs on: the guards control must not
    let an experiment run with guards it did not ask for."""
    config = {"knight_lab": "kctk-unit-no-lab", "knight_guards": "atomik"}
    with pytest.raises(
        InterruptExecution, match=r"knight could not prepare the lab: .*unknown guard 'atomik'"
    ):
        guards.before_experiment_control({"title": "t"}, configuration=config)
