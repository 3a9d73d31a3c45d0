"""``[space] plrs_draw_every``, ``plrs_distribution`` and ``plrs_beta_shape``: PLRS's hidden
choices in a study file, checked once, searched by ``tune`` on the Optuna backend."""

from __future__ import annotations

import copy

import optuna
import pytest

from prl_tune.config import SpecError, StudySpec, spec_differences
from prl_tune.space import PendingRangeTest

optuna.logging.set_verbosity(optuna.logging.WARNING)

VALID = {
    "study": {"name": "s", "n_trials": 3, "storage": "sqlite:///x.db"},
    "task": {"name": "digits", "epochs": 2, "params": {"model": "mlp"}},
    "optimizer": {"name": "sgd"},
    "space": {"lr_max": [0.001, 1.0]},
}


def _space(**keys: object) -> dict:
    data = copy.deepcopy(VALID)
    data["space"].update(keys)
    return data


def test_unset_choices_are_the_papers() -> None:
    spec = StudySpec.from_dict(VALID)
    plrs = spec.space.plrs
    assert (plrs.draw_every, plrs.distribution, plrs.beta_shape) == (("step",), ("uniform",), 2.0)
    assert spec.to_dict()["space"]["plrs_draw_every"] is None


def test_choices_are_fixed_or_searched() -> None:
    spec = StudySpec.from_dict(
        _space(plrs_draw_every=["step", 8, "epoch"], plrs_distribution="beta", plrs_beta_shape=4)
    )
    plrs = spec.space.plrs
    assert set(plrs.choices) == {"draw_every"}  # one scheduler: no prefix
    assert plrs.draw_every == ("step", 8, "epoch")
    assert (plrs.distribution, plrs.beta_shape) == (("beta",), 4.0)
    assert StudySpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()


def test_a_store_written_before_the_choices_existed_resumes() -> None:
    # A stored spec has no plrs_* keys; the same file read now differs in nothing.
    stored = StudySpec.from_dict(VALID).to_dict()
    for key in ("plrs_draw_every", "plrs_distribution", "plrs_beta_shape"):
        del stored["space"][key]
    assert spec_differences(stored, StudySpec.from_dict(VALID).to_dict()) == []
    searched = StudySpec.from_dict(_space(plrs_distribution=["uniform", "beta"])).to_dict()
    assert spec_differences(stored, searched) == [
        "[space] plrs_distribution: stored None, now ['uniform', 'beta']"
    ]


def test_a_range_test_space_carries_the_choices() -> None:
    spec = StudySpec.from_dict(
        _space(lr_max="range-test", plrs_draw_every=["step", "epoch"], schedulers=["plrs", "knee"])
    )
    assert isinstance(spec.space, PendingRangeTest)
    resolved = spec.with_lr_max((0.1, 0.3)).space
    assert set(resolved.plrs.choices) == {"plrs_draw_every"}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"plrs_draw_every": "week"},
            "[space] plrs_draw_every: must be 'step', 'epoch' or an integer >= 1 (steps) but got "
            "'week'.",
        ),
        ({"plrs_draw_every": 0}, "[space] plrs_draw_every: must be 'step', 'epoch' or an integer"),
        ({"plrs_draw_every": [8, 8]}, "[space] plrs_draw_every: must not repeat a choice"),
        (
            {"plrs_distribution": ["uniform", "gauss"]},
            "[space] plrs_distribution: each must be one of ['uniform', 'log-uniform', 'beta'] "
            "but got 'gauss'.",
        ),
        (
            {"plrs_beta_shape": -1},
            "[space] plrs_beta_shape: must be a finite number > 0 but got -1.",
        ),
        (
            {"plrs_beta_shape": 3},
            "[space] plrs_beta_shape: shapes a 'beta' draw, which no searched scheduler makes",
        ),
        (
            {"plrs_distribution": "log-uniform", "lr_min_ratio": 0},
            "[space] plrs_distribution: 'log-uniform' needs lr_min > 0",
        ),
        (
            {"schedulers": ["plrs", "plrs-beta"], "plrs_distribution": ["uniform", "beta"]},
            "[space] plrs_distribution: must be left to 'plrs-beta', which fixes "
            "distribution='beta'",
        ),
        (
            {"schedulers": ["cosine"], "plrs_draw_every": "epoch"},
            "[space] plrs_draw_every: applies to PLRS, which none of the schedulers ['cosine'] is",
        ),
        (
            {"lr_max": "range-test", "plrs_draw_every": "week"},
            "[space] plrs_draw_every: must be 'step', 'epoch' or an integer",
        ),
        (
            {"lr_max": "range-test", "schedulers": ["plrs-epoch"], "plrs_draw_every": 4},
            "[space] plrs_draw_every: must be left to 'plrs-epoch'",
        ),
        ({"plrs_draw": "epoch"}, "[space] plrs_draw: unknown key (did you mean"),
    ],
)
def test_bad_choices_give_one_line_naming_the_key(keys: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(_space(**keys))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_study_searches_the_choices_and_trains_with_them() -> None:
    # 6 trials of the Optuna objective, 2 epochs of the digits MLP each: every trial stores its
    # choices, and a trial with one draw per epoch trained at one LR per epoch (its history
    # says lr_min == lr_max in each epoch; a draw every step never does).
    from prl_tune.hosts.optuna import optuna_objective

    spec = StudySpec.from_dict(
        _space(
            plrs_draw_every=["step", "epoch"],
            plrs_distribution=["uniform", "log-uniform", "beta"],
            lr_max=[0.01, 0.5],
            lr_min_ratio=[0.1, 1.0],
        )
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: optuna_objective(spec, trial), n_trials=6)
    trials = study.trials
    assert {t.params["draw_every"] for t in trials} == {"step", "epoch"}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for trial in trials:
        assert trial.user_attrs["distribution"] == trial.params["distribution"]
        assert trial.user_attrs["draw_every"] == trial.params["draw_every"]
        history = trial.user_attrs["history"]
        per_epoch = [e["lr_min"] == e["lr_max"] for e in history]
        assert per_epoch == [trial.params["draw_every"] == "epoch"] * 2
        low, high = trial.user_attrs["lr_min"], trial.user_attrs["lr_max"]
        assert all(low <= e["lr_min"] <= e["lr_max"] <= high for e in history)
