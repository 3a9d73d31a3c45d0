from __future__ import annotations

from collections import Counter

import optuna
import pytest

from prl_tune import SCHEDULER_NAMES, PLRSSpace, SchedulerSpace
from prl_tune.space import ALL_SCHEDULERS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_space_knows_every_scheduler_the_factory_builds() -> None:
    assert tuple(ALL_SCHEDULERS) == tuple(SCHEDULER_NAMES)


def test_conditional_parameters_follow_the_choice() -> None:
    space = SchedulerSpace(plrs=PLRSSpace(lr_max=(0.01, 1.0)), lr=(1e-3, 1.0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = Counter()
    for _ in range(60):
        trial = study.ask()
        params = space.suggest(trial)
        name = params["scheduler"]
        seen[name] += 1
        if name == "plrs":
            assert set(trial.params) == {"scheduler", "plrs_lr_max", "plrs_lr_min_ratio"}
            lr_max = trial.params["plrs_lr_max"]
            lr_min = trial.params["plrs_lr_min_ratio"] * lr_max
            assert params == {"scheduler": "plrs", "lr_min": lr_min, "lr_max": lr_max}
            assert trial.user_attrs["lr_center"] == (lr_min + lr_max) / 2
        else:
            assert set(trial.params) == {"scheduler", f"{name}_lr"}
            assert params == {"scheduler": name, "lr": trial.params[f"{name}_lr"]}
        assert trial.user_attrs["scheduler"] == name
        study.tell(trial, 0.0)
    assert set(seen) == set(ALL_SCHEDULERS)


def test_single_scheduler_has_no_categorical() -> None:
    space = SchedulerSpace(["cosine"])
    trial = optuna.create_study().ask()
    assert space.suggest(trial)["scheduler"] == "cosine"
    assert set(trial.params) == {"lr"}


def test_ray_space_is_flat_and_decodes_to_the_active_scheduler() -> None:
    space = SchedulerSpace(["plrs", "onecycle", "constant"])
    rendered = space.ray_param_space()
    assert set(rendered) == {
        "scheduler",
        "plrs_lr_max",
        "plrs_lr_min_ratio",
        "onecycle_lr",
        "constant_lr",
    }
    import numpy as np

    rng = np.random.RandomState(0)
    names = Counter()
    for _ in range(60):
        config = {k: v.sample(random_state=rng) for k, v in rendered.items()}
        params = space.decode(config)
        names[params["scheduler"]] += 1
        if params["scheduler"] == "plrs":
            assert params == {
                "scheduler": "plrs",
                "lr_min": config["plrs_lr_min_ratio"] * config["plrs_lr_max"],
                "lr_max": config["plrs_lr_max"],
            }
        else:
            assert params == {
                "scheduler": params["scheduler"],
                "lr": config[f"{params['scheduler']}_lr"],
            }
    assert set(names) == {"plrs", "onecycle", "constant"}


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"schedulers": []}, ValueError, "schedulers"),
        ({"schedulers": ["plrs", "warp"]}, ValueError, "schedulers"),
        ({"schedulers": ["plrs", "plrs"]}, ValueError, "schedulers"),
        ({"schedulers": "plrs"}, TypeError, "schedulers"),
        ({"lr": (1.0, 0.1)}, ValueError, "lr"),
        ({"plrs": {"lr_max": 1}}, TypeError, "plrs"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        SchedulerSpace(**kwargs)
