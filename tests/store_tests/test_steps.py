"""A study's budget in optimizer steps (``StepBudget``), on hand-made trials: what counts, what a
running trial is counted as, and when one more trial may start."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from prl_tune.store import StepBudget, steps_used, trial_steps


def _trial(state: TrialState, **attrs: Any) -> FrozenTrial:
    value = 0.5 if state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(state=state, value=value, user_attrs=attrs)


def _running(**attrs: Any) -> FrozenTrial:
    trial = _trial(TrialState.COMPLETE, **attrs)
    trial.state, trial.value = TrialState.RUNNING, None  # create_trial makes finished trials only
    return trial


FINISHED = [
    _trial(TrialState.COMPLETE, steps=40),
    _trial(TrialState.PRUNED, steps=10, pruned_by="base"),  # a base pruner stopped it
    _trial(TrialState.PRUNED, steps=3, pruned_by="rules"),  # the divergence rules stopped it
    _trial(TrialState.PRUNED, steps=0, pruned_by="memory"),  # blocked before training
    _trial(TrialState.FAIL, error="ValueError: boom"),  # its own code raised: counts, 0 steps
]


def test_every_finished_trial_counts_the_steps_it_ran() -> None:
    assert [trial_steps(t) for t in FINISHED] == [40, 10, 3, 0, 0]
    assert steps_used(FINISHED) == 53


def test_a_trial_to_be_run_again_does_not_count() -> None:
    died = _trial(TrialState.FAIL, error="worker killed by signal 9", fail_reason="re-run", steps=7)
    waiting = _trial(TrialState.WAITING)
    assert steps_used([*FINISHED, died, waiting]) == 53


def test_a_running_trial_is_counted_at_the_most_it_can_run() -> None:
    budget = StepBudget(steps=100, trial_steps=40)
    assert budget.committed(FINISHED) == 53 and budget.allows_another(FINISHED)
    one = [*FINISHED, _running()]
    assert budget.committed(one) == 93 and budget.allows_another(one)
    two = [*one, _running(steps=5)]  # whatever it has recorded so far
    assert budget.committed(two) == 133 and not budget.allows_another(two)
    # ... but the steps used are those of the finished trials only
    assert steps_used(two) == 53 and not budget.spent(two)


def test_the_budget_is_spent_once_the_finished_trials_reach_it() -> None:
    assert not StepBudget(steps=54, trial_steps=40).spent(FINISHED)
    assert StepBudget(steps=53, trial_steps=40).spent(FINISHED)
    assert not StepBudget(steps=53, trial_steps=40).allows_another(FINISHED)
    assert StepBudget(steps=1, trial_steps=1).allows_another([])  # an empty study starts


@pytest.mark.parametrize(
    ("steps", "trial_steps", "error", "message"),
    [
        (0, 10, ValueError, "steps must be >= 1 but got 0."),
        (10, 0, ValueError, "trial_steps must be >= 1 but got 0."),
        (10.5, 10, TypeError, "steps must be an integer >= 1 but got 10.5 (float)."),
        (True, 10, TypeError, "steps must be an integer >= 1 but got True (bool)."),
    ],
)
def test_bad_values_are_refused(steps: Any, trial_steps: Any, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        StepBudget(steps=steps, trial_steps=trial_steps)
    assert str(raised.value) == message
