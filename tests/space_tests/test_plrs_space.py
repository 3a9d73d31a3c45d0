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
