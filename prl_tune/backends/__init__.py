"""Backends that run a study: Optuna (worker processes on a shared storage)."""

from prl_tune.backends._objective import objective_value, optuna_objective, train_config
from prl_tune.backends._optuna import (
    counted_trials,
    create_or_resume,
    make_pruner,
    make_sampler,
    run_study,
)

__all__ = [
    "counted_trials",
    "create_or_resume",
    "make_pruner",
    "make_sampler",
    "objective_value",
    "optuna_objective",
    "run_study",
    "train_config",
]
