"""``[space] warm_start = "range-test"``: the study's LR range test places its first trials,
once per study, inside the space; the sampler takes over after them."""

from __future__ import annotations

import copy
import sqlite3

import optuna
import pytest
from optuna.trial import TrialState

from prl_tune.config import SpecError, StudySpec, load_spec
from prl_tune.hosts._shared import (
    ADAMW_DIVISOR,
    WARM_CENTRE_ATTR,
    WARM_START_ATTR,
    WARM_START_FACTORS,
    WARM_START_RATIO,
    warm_start_divisor,
)
from prl_tune.hosts.optuna import run_study
from prl_tune.space import PLRSSpace
from prl_tune.store import SPEC_ATTR, stored_range_test

VALID = {
    "study": {"name": "s", "n_trials": 3, "storage": "sqlite:///x.db"},
    "task": {"name": "digits", "epochs": 1, "params": {"model": "mlp"}},
    "space": {"lr_max": [0.001, 1.0]},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_warm_start_is_on_by_default_and_checked() -> None:
    spec = StudySpec.from_dict(VALID)
    assert (spec.warm_start, spec.warm_start_span) == ("range-test", 64.0)
    data = copy.deepcopy(VALID)
    data["space"]["warm_start"] = "range_test"
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(data)
    assert str(info.value).startswith(
        "[space] warm_start: must be one of ['none', 'range-test'] but got 'range_test'"
    )


def test_a_study_stored_before_the_warm_start_resumes_without_one(write_study) -> None:
    path, storage = write_study(n_trials=1)
    run_study(load_spec(path), stream=None)
    study = optuna.load_study(study_name="t", storage=storage)
    old = study.user_attrs[SPEC_ATTR]
    for key in ("warm_start", "warm_start_span"):
        del old["space"][key]  # as an earlier prl_tune stored it
    study.set_user_attr(SPEC_ATTR, old)
    path.write_text(path.read_text().replace('warm_start = "none"', ""))  # today's defaults
    resumed = run_study(load_spec(path), n_trials=3, stream=None)
    assert stored_range_test(resumed) is None and WARM_START_ATTR not in resumed.user_attrs
    for trial in resumed.trials:  # the file's range, no window, no enqueued trial
        assert (trial.distributions["lr_max"].low, trial.distributions["lr_max"].high) == (
            0.01,
            0.5,
        )
        assert "warm_start" not in trial.user_attrs


def test_compare_tunes_every_scheduler_without_a_warm_start() -> None:
    from prl_tune.compare import plan_comparison

    data = copy.deepcopy(VALID)
    data["space"].update(schedulers=["plrs", "cosine"], warm_start="range-test")
    plan = plan_comparison(StudySpec.from_dict(data))
    for scheduler in plan.schedulers:
        assert plan.tuning_spec(scheduler, 0).warm_start == "none"


@pytest.mark.parametrize(
    ("space", "lr_min", "lr_max", "expected"),
    [
        (PLRSSpace((0.001, 1.0), (0.0, 1.0)), 0.07, 0.1, (0.07, 0.1)),  # inside: exact
        (PLRSSpace((0.001, 1.0), (0.0, 1.0)), 3.5, 5.0, (0.7, 1.0)),  # lr_max clipped
        (PLRSSpace((0.001, 1.0), (0.5, 1.0)), 0.01, 0.1, (0.05, 0.1)),  # ratio clipped
        (PLRSSpace((0.1, 0.2), lr_min=(0.07, 0.1)), 0.08, 0.15, (0.08, 0.15)),  # lr_min range
        (PLRSSpace((0.1, 0.2), lr_min=(0.07, 0.1)), 0.01, 0.15, (0.07, 0.15)),
    ],
)
def test_params_for_decodes_to_the_nearest_bounds_in_the_space(
    space: PLRSSpace, lr_min: float, lr_max: float, expected: tuple[float, float]
) -> None:
    params = space.params_for(lr_min, lr_max)
    assert set(params) == set(space.param_names)
    decoded = space.decode(params)
    assert (decoded["lr_min"], decoded["lr_max"]) == pytest.approx(expected, rel=1e-9)


def test_the_first_trials_come_from_the_range_test_once_per_study(write_study) -> None:
    path, storage = write_study(
        n_trials=3,
        lr_max="[0.001, 1.0]",
        warm_start=None,  # the default
    )
    study = run_study(load_spec(path), stream=None)
    result = stored_range_test(study)
    assert result is not None
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 3
    divisor = warm_start_divisor(load_spec(path))
    assert divisor == 4.0  # plain SGD: the range test's own suggestion first
    for trial, factor in zip(trials, WARM_START_FACTORS, strict=False):
        lr_max = min(max(result.min_loss_lr / (factor * divisor), 0.001), 1.0)
        assert trial.user_attrs["warm_start"] is True
        assert trial.user_attrs["lr_max"] == pytest.approx(lr_max)
        assert trial.user_attrs["lr_min"] == pytest.approx(WARM_START_RATIO * lr_max)
    assert "warm_start" not in trials[2].user_attrs  # then the sampler
    assert len(study.user_attrs[WARM_START_ATTR]) == len(WARM_START_FACTORS)
    # A resumed study enqueues nothing again.
    resumed = run_study(load_spec(path), n_trials=4, stream=None)
    assert len(resumed.trials) == 4
    assert sum("warm_start" in t.user_attrs for t in resumed.trials) == len(WARM_START_FACTORS)
    assert all(t.state != TrialState.WAITING for t in resumed.trials)
    assert optuna.load_study(study_name="t", storage=storage).user_attrs[WARM_START_ATTR]


def test_with_several_schedulers_the_warm_start_trials_are_plrs(write_study) -> None:
    path, _ = write_study(
        n_trials=2,
        schedulers='["constant", "plrs"]',
        warm_start="range-test",
        space_extra='allocation = "sampler"',
    )
    study = run_study(load_spec(path), stream=None)
    assert [t.params["scheduler"] for t in study.trials] == ["plrs", "plrs"]


@pytest.mark.parametrize(("momentum", "divisor"), [(0.0, 4.0), (0.75, 8.0), (0.9, 4 / 0.1**0.5)])
def test_momentum_moves_the_first_trial_further_below_the_blow_up(momentum, divisor) -> None:
    data = copy.deepcopy(VALID)
    data["optimizer"] = {"name": "sgd", "momentum": momentum}
    assert warm_start_divisor(StudySpec.from_dict(data)) == pytest.approx(divisor)


def test_adamw_starts_further_below_the_range_tests_minimum_than_plain_sgd() -> None:
    data = copy.deepcopy(VALID)
    data["optimizer"] = {"name": "adamw"}
    assert warm_start_divisor(StudySpec.from_dict(data)) == ADAMW_DIVISOR == 16.0


def test_the_centre_is_recorded_and_an_older_study_keeps_the_divisor_it_ran_with(
    write_study, tmp_path
) -> None:
    path, _ = write_study(
        n_trials=2,
        lr_max="[0.00001, 10.0]",
        warm_start="range-test",
        space_extra="warm_start_span = 16",
    )
    path.write_text(path.read_text().replace('name = "sgd"', 'name = "adamw"'))
    study = run_study(load_spec(path), stream=None)
    result = stored_range_test(study)
    assert result is not None
    centre = result.min_loss_lr / ADAMW_DIVISOR
    assert study.user_attrs[WARM_CENTRE_ATTR] == pytest.approx(centre)
    first = min(study.trials, key=lambda t: t.number)
    assert first.user_attrs["lr_max"] == pytest.approx(centre)
    # The store of a prl_tune that recorded no centre (and divided by 4 under AdamW):
    with sqlite3.connect(tmp_path / "store.db") as db:
        db.execute("DELETE FROM study_user_attributes WHERE key = ?", (WARM_CENTRE_ATTR,))
    resumed = run_study(load_spec(path), n_trials=3, stream=None)
    legacy = result.min_loss_lr / 4
    last = max(resumed.trials, key=lambda t: t.number)
    distribution = last.distributions["lr_max"]
    assert (distribution.low, distribution.high) == pytest.approx((legacy / 4, legacy * 4))
    assert WARM_CENTRE_ATTR not in resumed.user_attrs  # nothing stored is rewritten


def test_warm_start_span_narrows_the_search_around_the_first_trial(write_study) -> None:
    path, _ = write_study(
        n_trials=4,
        lr_max="[0.0001, 10.0]",
        warm_start="range-test",
        space_extra="warm_start_span = 16",
    )
    study = run_study(load_spec(path), stream=None)
    result = stored_range_test(study)
    assert result is not None
    centre = result.min_loss_lr / warm_start_divisor(load_spec(path))
    window = (centre / 4, centre * 4)
    for trial in study.trials:  # every trial, enqueued or sampled, searched the window
        distribution = trial.distributions["lr_max"]
        assert (distribution.low, distribution.high) == pytest.approx(window)
        assert window[0] <= trial.user_attrs["lr_max"] <= window[1]
    resumed = run_study(load_spec(path), n_trials=5, stream=None)  # the same window again
    last = max(resumed.trials, key=lambda t: t.number)
    assert (last.distributions["lr_max"].low, last.distributions["lr_max"].high) == pytest.approx(
        window
    )


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (0.5, "must be 0 (no window: the whole lr_max range) or >= 1 but got 0.5"),
        ("wide", "must be a finite number >= 0 but got 'wide'"),
        (-1, "must be a finite number >= 0 but got -1"),
    ],
)
def test_a_bad_warm_start_span_is_one_line(bad: object, rule: str) -> None:
    data = copy.deepcopy(VALID)
    data["space"]["warm_start_span"] = bad
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(data)
    assert str(info.value).startswith(f"[space] warm_start_span: {rule}")


def test_warm_start_span_0_keeps_the_whole_range(write_study) -> None:
    path, _ = write_study(
        n_trials=3,
        lr_max="[0.0001, 10.0]",
        warm_start="range-test",
        space_extra="warm_start_span = 0",
    )
    study = run_study(load_spec(path), stream=None)
    assert len(study.user_attrs[WARM_START_ATTR]) == len(WARM_START_FACTORS)  # first trials
    for trial in study.trials:
        distribution = trial.distributions["lr_max"]
        assert (distribution.low, distribution.high) == (0.0001, 10.0)
