"""``run_study(..., max_steps=N)``: a study that ends on a budget of optimizer steps, with one
worker and with two, on a real SQLite store and real (tiny) training.

The budget's promise: a new trial starts only while the finished trials' steps plus a full
trial for each running one are below ``N``, so the study ends with its steps in ``[N, N + one
trial's steps)``. The tests check that promise at the start of every trial, from the trials'
own timestamps, not only at the end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from prl_tune.config import load_spec, steps_per_trial
from prl_tune.hosts.optuna import run_study
from prl_tune.store import OWNER_ATTR, STEP_BUDGET_ATTR, steps_used, trial_steps, uses_budget

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: A 3-class blobs MLP: 6 batches per epoch, 4 epochs, so one trial runs at most 24 steps.
EPOCHS = 4
TRIAL_STEPS = 24
BUDGET = 100
DIES_ONCE = "fixtures.step_tasks:dies_once"
PRUNING = '\n[pruning]\nbase = "median"\nn_startup_trials = 1\n'


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write(
    write_study: Callable[..., tuple[Path, str]], *, workers: int = 1, dies_once: Path | None = None
) -> tuple[Path, str]:
    """The blobs task (``dies_once``: its first trial's worker is killed, ``dies_once`` a flag)."""
    return write_study(
        name="steps",
        n_trials=200,  # the trial budget is not what ends these studies
        epochs=EPOCHS,
        task="fixtures.compare_tasks:no_test" if dies_once is None else DIES_ONCE,
        task_params="" if dies_once is None else f'params = {{ flag = "{dies_once}" }}',
        lr_max="[0.01, 30.0]",  # the widest ranges blow up within a few steps
        study_extra=f"workers = {workers}",
        space_extra=PRUNING,
    )


def _committed_at_each_start(trials: list[FrozenTrial]) -> dict[int, int]:
    """For each trial, the steps the study was committed to when it started: the finished
    trials' steps plus a full trial for each one then running (by the trials' timestamps)."""
    committed = {}
    for trial in trials:
        assert trial.datetime_start is not None
        total = 0
        for other in trials:
            if other is trial or other.datetime_start is None:
                continue
            if other.datetime_start >= trial.datetime_start:
                continue
            ended = other.datetime_complete
            if ended is not None and ended <= trial.datetime_start:
                total += trial_steps(other) if uses_budget(other) else 0
            else:
                total += TRIAL_STEPS
        committed[trial.number] = total
    return committed


def _check_budget(study: optuna.Study, budget: int) -> list[FrozenTrial]:
    trials = study.get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    used = steps_used(trials)
    assert budget <= used < budget + TRIAL_STEPS, (used, [trial_steps(t) for t in trials])
    late = {n: c for n, c in _committed_at_each_start(trials).items() if c >= budget}
    assert not late, f"trials started with the budget committed: {late}"
    return trials


def test_one_trial_runs_at_most_the_steps_the_budget_counts(write_study) -> None:
    path, _ = _write(write_study)
    assert steps_per_trial(load_spec(path)) == TRIAL_STEPS


def test_one_worker_stops_once_the_steps_are_used_pruned_trials_included(write_study) -> None:
    path, _ = _write(write_study)
    study = run_study(load_spec(path), max_steps=BUDGET, stream=None)
    trials = _check_budget(study, BUDGET)
    assert study.user_attrs[STEP_BUDGET_ATTR] == BUDGET
    short = [t for t in trials if t.state == TrialState.PRUNED and trial_steps(t) < TRIAL_STEPS]
    assert short, "no trial was stopped early: the test would not show that they count"
    assert steps_used(trials) == sum(trial_steps(t) for t in trials)  # pruned ones included
    # With one worker no trial runs beside another: each started below the budget, so the
    # steps before the last trial were below it, and with it at or above.
    last = trials[-1]
    assert steps_used(trials) - trial_steps(last) < BUDGET


def test_two_workers_share_the_budget_and_overshoot_by_less_than_one_trial(write_study) -> None:
    path, _ = _write(write_study, workers=2)
    study = run_study(load_spec(path), max_steps=BUDGET, stream=None)
    trials = _check_budget(study, BUDGET)
    starts = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    overlapped = any(b[0] < a[1] for a, b in itertools.pairwise(starts))  # type: ignore[operator]
    assert overlapped, "the two workers never ran trials at once: the test would be vacuous"
    assert len({t.user_attrs[OWNER_ATTR]["pid"] for t in trials}) == 2  # both took trials


def test_a_rerun_with_the_same_budget_runs_nothing_and_a_larger_one_extends(write_study) -> None:
    path, _ = _write(write_study)
    spec = load_spec(path)
    first = [t.number for t in run_study(spec, max_steps=BUDGET, stream=None).get_trials()]
    again = run_study(spec, max_steps=BUDGET, stream=None)
    assert [t.number for t in again.get_trials()] == first
    more = run_study(spec, max_steps=2 * BUDGET, stream=None)
    trials = _check_budget(more, 2 * BUDGET)
    assert len(trials) > len(first) and more.user_attrs[STEP_BUDGET_ATTR] == 2 * BUDGET


def test_the_trial_budget_ends_the_study_when_it_comes_first(write_study) -> None:
    path, _ = _write(write_study)
    study = run_study(load_spec(path), n_trials=2, max_steps=10_000, stream=None)
    assert len(study.trials) == 2 and steps_used(study.trials) < 10_000


def test_a_trial_whose_worker_died_is_run_again_and_its_steps_do_not_count(
    write_study, tmp_path: Path
) -> None:
    flag = tmp_path / "died"
    path, _ = _write(write_study, workers=2, dies_once=flag)
    study = run_study(load_spec(path), max_steps=BUDGET, stream=None)
    assert flag.exists()
    trials = _check_budget(study, BUDGET)
    died = [t for t in trials if t.state == TrialState.FAIL]
    assert len(died) == 1 and died[0].user_attrs["error"] == "worker killed by signal 9"
    assert not uses_budget(died[0])


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (2.5, TypeError)])
def test_a_bad_max_steps_is_refused_before_the_store_is_touched(
    write_study, value: object, error: type
) -> None:
    path, storage = _write(write_study)
    with pytest.raises(error, match=r"^max_steps must be"):
        run_study(load_spec(path), max_steps=value, stream=None)  # type: ignore[arg-type]
    assert not Path(storage.removeprefix("sqlite:///")).exists()
