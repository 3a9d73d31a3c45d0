from __future__ import annotations

import math

import optuna
import pytest

from prl_tune import PLRSSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sample(space: PLRSSpace, n: int, sampler: optuna.samplers.BaseSampler) -> list:
    study = optuna.create_study(sampler=sampler)
    results = []
    for _ in range(n):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, -abs(math.log(params["lr_max"]) + 2.0))
        results.append((trial, params))
    return results


@pytest.mark.parametrize(
    "sampler",
    [optuna.samplers.RandomSampler(seed=0), optuna.samplers.TPESampler(seed=0, multivariate=True)],
)
def test_bounds_hold_by_construction(sampler: optuna.samplers.BaseSampler) -> None:
    space = PLRSSpace(lr_max=(1e-3, 2.0), lr_min_ratio=(0.2, 0.9))
    for trial, params in _sample(space, 40, sampler):
        # lr_max as sampled, lr_min = ratio x lr_max: the bounds hold by construction.
        assert params == {
            "lr_min": trial.params["lr_min_ratio"] * trial.params["lr_max"],
            "lr_max": trial.params["lr_max"],
        }
        assert 0 <= params["lr_min"] <= params["lr_max"]
        assert 1e-3 <= params["lr_max"] <= 2.0
        ratio = params["lr_min"] / params["lr_max"]
        assert 0.2 - 1e-12 <= ratio <= 0.9 + 1e-12


def test_distributions_are_fixed_across_trials() -> None:
    space = PLRSSpace()
    results = _sample(space, 12, optuna.samplers.TPESampler(seed=1, multivariate=True))
    first = results[0][0].distributions
    assert set(first) == {"lr_max", "lr_min_ratio"}
    assert first["lr_max"].log is True
    for trial, _ in results:
        assert trial.distributions == first


def test_bounds_are_stored_on_the_trial(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    params = PLRSSpace().suggest(trial)
    study.tell(trial, 1.0)
    stored = optuna.load_study(study_name="s", storage=storage).trials[0]
    # Python floats survive the store bit for bit.
    assert stored.user_attrs == {
        "lr_min": params["lr_min"],
        "lr_max": params["lr_max"],
        "lr_center": (params["lr_min"] + params["lr_max"]) / 2,
    }
    assert stored.params["lr_max"] == params["lr_max"]


def test_decode_maps_ratio_to_lr_min() -> None:
    assert PLRSSpace().decode({"lr_max": 0.1, "lr_min_ratio": 0.7}) == pytest.approx(
        {"lr_min": 0.07, "lr_max": 0.1}
    )


def test_fixed_ratio_one_is_a_constant_lr() -> None:
    params = _sample(PLRSSpace(lr_min_ratio=1.0), 3, optuna.samplers.RandomSampler(seed=0))
    for _, p in params:
        assert p["lr_min"] == p["lr_max"]


def test_lr_min_range_keeps_lr_min_in_range_and_below_lr_max() -> None:
    space = PLRSSpace(lr_max=(0.05, 1.0), lr_min=(0.01, 0.5))
    assert space.param_names == ("lr_max", "lr_min_frac")
    for trial, p in _sample(space, 60, optuna.samplers.RandomSampler(seed=3)):
        # lr_min_frac places lr_min log-linearly in [0.01, min(0.5, lr_max)].
        high = min(0.5, p["lr_max"])
        expected = 0.01 * (high / 0.01) ** trial.params["lr_min_frac"]
        assert p["lr_min"] == pytest.approx(expected, rel=1e-12)
        assert 0.01 - 1e-12 <= p["lr_min"] <= high + 1e-12


def test_ray_param_space_samples_decode_into_the_same_space() -> None:
    space = PLRSSpace(lr_max=(1e-3, 1.0), lr_min_ratio=(0.5, 1.0))
    rendered = space.ray_param_space()
    assert set(rendered) == {"lr_max", "lr_min_ratio"}
    import numpy as np

    rng = np.random.RandomState(0)
    for _ in range(50):
        config = {key: domain.sample(random_state=rng) for key, domain in rendered.items()}
        params = space.decode(config)
        assert params == {
            "lr_min": config["lr_min_ratio"] * config["lr_max"],
            "lr_max": config["lr_max"],
        }
        assert 1e-3 <= params["lr_max"] <= 1.0
        assert 0.5 * params["lr_max"] - 1e-12 <= params["lr_min"] <= params["lr_max"]


def test_ray_log_uniform_matches_optuna_log_scale() -> None:
    from ray.tune.search.sample import LogUniform

    rendered = PLRSSpace(lr_max=(1e-4, 1.0)).ray_param_space()
    assert isinstance(rendered["lr_max"].get_sampler(), LogUniform)
    values = sorted(rendered["lr_max"].sample(size=4000, random_state=0))
    median = values[len(values) // 2]
    # log-uniform on [1e-4, 1]: the median is 1e-2; a uniform draw would put it near 0.5.
    # The sample median of log10 has a standard error of 4 * 0.5 / sqrt(4000) = 0.032: the
    # band of +-0.2 decades is over six standard errors wide.
    assert 10**-2.2 < median < 10**-1.8


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"lr_max": (1.0, 0.1)}, ValueError, "lr_max"),
        ({"lr_max": (-1.0, 0.1)}, ValueError, "lr_max"),
        ({"lr_max": (0.0, 0.1)}, ValueError, "lr_max"),
        ({"lr_max": (1e-3, math.inf)}, ValueError, "lr_max"),
        ({"lr_max": (1e-3, math.nan)}, ValueError, "lr_max"),
        ({"lr_max": "big"}, TypeError, "lr_max"),
        ({"lr_min_ratio": (0.5, 1.5)}, ValueError, "lr_min_ratio"),
        ({"lr_min_ratio": (-0.1, 0.5)}, ValueError, "lr_min_ratio"),
        ({"lr_max": (0.01, 0.02), "lr_min": (0.05, 0.1)}, ValueError, "lr_max"),
        ({"lr_min": (0.01, 0.1), "lr_min_ratio": (0.1, 0.5)}, ValueError, "lr_min"),
        ({"prefix": 3}, TypeError, "prefix"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment) as info:
        PLRSSpace(**kwargs)
    assert "\n" not in str(info.value)


# --- PLRS's hidden choices: the draw frequency and the distribution -------------------------

DRAWS = ["step", 8, "epoch"]
DISTRIBUTIONS = ["uniform", "log-uniform", "beta"]


def test_the_paper_choices_add_no_parameter() -> None:
    space = PLRSSpace(draw_every="step", distribution="uniform", beta_shape=2.0)
    assert space.choices == {} and space.choice_params == frozenset()
    trial = optuna.create_study().ask()
    assert set(space.suggest(trial)) == {"lr_min", "lr_max"}
    assert set(trial.params) == {"lr_max", "lr_min_ratio"}
    assert set(space.ray_param_space()) == {"lr_max", "lr_min_ratio"}
    assert set(space.optuna_distributions()) == {"lr_max", "lr_min_ratio"}


def test_searched_choices_are_categorical_parameters_on_optuna(tmp_path) -> None:
    space = PLRSSpace(lr_max=(0.01, 1.0), draw_every=DRAWS, distribution=DISTRIBUTIONS)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for _ in range(15):
        trial = study.ask()
        params = space.suggest(trial)
        study.tell(trial, 0.0)
        assert params == {
            **space.decode(trial.params),
            "draw_every": trial.params["draw_every"],
            "distribution": trial.params["distribution"],
        }
        assert trial.distributions["draw_every"] == optuna.distributions.CategoricalDistribution(
            DRAWS
        )
    stored = optuna.load_study(study_name="s", storage=storage).trials
    # Every choice is sampled; the stored values keep their types (8 stays an int) and are on
    # the trial's user attributes too.
    assert {t.params["draw_every"] for t in stored} == set(DRAWS)
    assert {t.params["distribution"] for t in stored} == set(DISTRIBUTIONS)
    assert all(
        type(t.params["draw_every"]) is (int if t.params["draw_every"] == 8 else str)
        for t in stored
    )
    assert all(t.user_attrs["draw_every"] == t.params["draw_every"] for t in stored)
    assert space.optuna_distributions()["distribution"] == (
        optuna.distributions.CategoricalDistribution(DISTRIBUTIONS)
    )


def test_a_fixed_choice_is_in_the_params_but_not_searched() -> None:
    space = PLRSSpace(draw_every=1, distribution="beta", beta_shape=3)
    trial = optuna.create_study().ask()
    params = space.suggest(trial)
    assert set(trial.params) == {"lr_max", "lr_min_ratio"}
    assert params["distribution"] == "beta" and params["beta_shape"] == 3.0
    assert "draw_every" not in params  # 1 is the paper's "step"
    assert trial.user_attrs["distribution"] == "beta"


def test_the_prefix_applies_to_the_choices() -> None:
    space = PLRSSpace(draw_every=["step", "epoch"]).with_prefix("plrs_")
    assert set(space.choices) == {"plrs_draw_every"}
    assert (
        space.decode({"plrs_lr_max": 0.1, "plrs_lr_min_ratio": 0.5, "plrs_draw_every": "epoch"})[
            "draw_every"
        ]
        == "epoch"
    )


def test_ray_param_space_renders_the_choices_and_decodes_them() -> None:
    from ray.tune.search.sample import Categorical

    space = PLRSSpace(draw_every=DRAWS, distribution=DISTRIBUTIONS)
    rendered = space.ray_param_space()
    assert set(rendered) == {"lr_max", "lr_min_ratio", "draw_every", "distribution"}
    assert isinstance(rendered["draw_every"], Categorical)
    assert rendered["draw_every"].categories == DRAWS
    import numpy as np

    rng = np.random.RandomState(0)
    seen = set()
    for _ in range(60):
        config = {key: domain.sample(random_state=rng) for key, domain in rendered.items()}
        params = space.decode(config)
        assert params["draw_every"] == config["draw_every"]
        assert params["distribution"] == config["distribution"]
        seen.add((params["draw_every"], params["distribution"]))
    assert len(seen) == 9  # every combination; 8 is sampled as the int it is
    with pytest.raises(ValueError, match="draw_every must be one of"):
        space.decode({"lr_max": 0.1, "lr_min_ratio": 0.5, "draw_every": 4, "distribution": "beta"})
    with pytest.raises(KeyError, match="distribution"):
        space.decode({"lr_max": 0.1, "lr_min_ratio": 0.5, "draw_every": 8})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"draw_every": "week"}, ValueError, "draw_every must be 'step', 'epoch' or an integer"),
        ({"draw_every": 0}, ValueError, "draw_every must be 'step', 'epoch' or an integer"),
        ({"draw_every": 2.5}, TypeError, "but got 2.5 (float)."),
        ({"draw_every": []}, ValueError, "draw_every must not be an empty list but got []."),
        (
            {"draw_every": ["step", 1]},
            ValueError,
            "draw_every must not repeat a choice ('step' is 1) but got ['step', 1].",
        ),
        ({"distribution": "normal"}, ValueError, "distribution each must be one of"),
        ({"distribution": ["beta", "beta"]}, ValueError, "distribution must not repeat"),
        ({"beta_shape": 0}, ValueError, "beta_shape must be a finite number > 0 but got 0."),
        (
            {"distribution": "log-uniform", "lr_min_ratio": 0.0},
            ValueError,
            "distribution 'log-uniform' needs lr_min > 0 (log(0) is undefined) but got "
            "lr_min_ratio [0.0, 0.0], which makes lr_min always 0.",
        ),
    ],
)
def test_bad_choices_are_refused_in_one_line(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        PLRSSpace(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
