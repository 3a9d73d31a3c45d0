"""Backends that run a study: Optuna (worker processes on a shared storage)."""

from prl_tune.backends._objective import objective_value, optuna_objective, train_config
from prl_tune.backends._optuna import (
    counted_trials,
    create_or_resume,
    make_pruner,
    make_sampler,
    run_study,
)
from prl_tune.backends._range import (
    RANGE_TEST_ATTR,
    record_range_test,
    resolve_lr_max,
    run_range_test,
    stored_range_test,
)

__all__ = [
    "RANGE_TEST_ATTR",
    "counted_trials",
    "create_or_resume",
    "make_pruner",
    "make_sampler",
    "objective_value",
    "optuna_objective",
    "record_range_test",
    "resolve_lr_max",
    "run_range_test",
    "run_study",
    "stored_range_test",
    "train_config",
]
