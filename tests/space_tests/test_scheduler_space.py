from __future__ import annotations

from collections import Counter

import optuna
import pytest

from prl_tune import SCHEDULER_NAMES, PLRSSpace, SchedulerSpace
from prl_tune.schedulers import PLRS_VARIANTS
from prl_tune.space import ALL_SCHEDULERS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_space_knows_every_scheduler_the_factory_builds() -> None:
    # The default choice is the paper's six; the PLRS variants are searched when named.
    assert tuple(ALL_SCHEDULERS) + PLRS_VARIANTS == tuple(SCHEDULER_NAMES)
    assert SchedulerSpace(list(SCHEDULER_NAMES)).schedulers == SCHEDULER_NAMES


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


# --- the PLRS variants and PLRS's searched choices -------------------------------------------


def test_plrs_variants_share_the_plrs_bounds_and_build_with_their_choice() -> None:
    import torch

    from prl_tune import build_scheduler
    from prl_tune.schedulers import PLRS

    space = SchedulerSpace(["plrs", *PLRS_VARIANTS], plrs=PLRSSpace(lr_max=(0.01, 1.0)))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        name = config.pop("scheduler")
        seen.add(name)
        assert set(trial.params) == {"scheduler", "plrs_lr_max", "plrs_lr_min_ratio"}
        assert set(config) == {"lr_min", "lr_max"}
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = build_scheduler(name, optimizer, epochs=2, steps_per_epoch=6, **config)
        assert isinstance(scheduler, PLRS)
        assert scheduler.draw_every == {"plrs-epoch": 6, "plrs-every8": 8}.get(name, 1)
        expected = {"plrs-loguniform": "log-uniform", "plrs-beta": "beta"}.get(name, "uniform")
        assert scheduler.distribution == expected
        study.tell(trial, 0.0)
    assert seen == {"plrs", *PLRS_VARIANTS}


def test_searched_plrs_choices_are_conditional_on_plrs() -> None:
    plrs = PLRSSpace(draw_every=["step", "epoch"], distribution=["uniform", "beta"])
    space = SchedulerSpace(["plrs", "cosine"], plrs=plrs)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        if params["scheduler"] == "plrs":
            assert set(trial.params) == {
                "scheduler",
                "plrs_lr_max",
                "plrs_lr_min_ratio",
                "plrs_draw_every",
                "plrs_distribution",
            }
            assert params["draw_every"] == trial.params["plrs_draw_every"]
        else:
            assert set(trial.params) == {"scheduler", "cosine_lr"}
        study.tell(trial, 0.0)
    rendered = space.ray_param_space()
    assert {"plrs_draw_every", "plrs_distribution"} <= set(rendered)
    config = {k: v.sample(random_state=0) for k, v in rendered.items()}
    cosine = space.decode({**config, "scheduler": "cosine"})
    assert cosine == {"scheduler": "cosine", "lr": config["cosine_lr"]}
    assert space.decode({**config, "scheduler": "plrs"})["draw_every"] == config["plrs_draw_every"]


@pytest.mark.parametrize(
    ("schedulers", "plrs", "message"),
    [
        (
            ["plrs", "plrs-epoch"],
            {"draw_every": ["step", 8]},
            "plrs_draw_every must be left to 'plrs-epoch', which fixes draw_every='epoch' "
            "(search it with 'plrs' alone) but got ['step', 8].",
        ),
        (["plrs-beta"], {"distribution": "uniform", "beta_shape": 3.0}, None),
        (
            ["plrs"],
            {"beta_shape": 3.0},
            "plrs_beta_shape shapes a 'beta' draw, which no searched scheduler makes",
        ),
        (
            ["cosine"],
            {"distribution": "beta"},
            "plrs_distribution applies to PLRS, which none of the schedulers ['cosine'] is, but "
            "got 'beta'.",
        ),
        (
            ["plrs-loguniform"],
            {"lr_min_ratio": 0.0},
            "schedulers 'plrs-loguniform' (a log-uniform draw) needs lr_min > 0",
        ),
    ],
)
def test_choices_that_do_not_fit_the_schedulers_are_refused(
    schedulers: list[str], plrs: dict, message: str | None
) -> None:
    if message is None:  # a beta shape for the beta variant is fine
        SchedulerSpace(schedulers, plrs=PLRSSpace(**plrs))
        return
    with pytest.raises(ValueError) as info:
        SchedulerSpace(schedulers, plrs=PLRSSpace(**plrs))
    assert str(info.value) == message or str(info.value).startswith(message)
    assert "\n" not in str(info.value)
