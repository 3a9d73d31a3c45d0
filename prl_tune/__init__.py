"""prl_tune: the probabilistic learning-rate scheduler (PLRS), tunable with Optuna and Ray Tune.

The public names are imported lazily (PEP 562), so ``prl-tune --help`` and ``import prl_tune``
stay fast and a missing optional dependency only matters for the part that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prl_tune._version import __version__

_EXPORTS: dict[str, str] = {
    "PLRS": "prl_tune.schedulers",
    "KneeLR": "prl_tune.schedulers",
    "SCHEDULER_NAMES": "prl_tune.schedulers",
    "build_scheduler": "prl_tune.schedulers",
    "PLRSSpace": "prl_tune.space",
    "SchedulerSpace": "prl_tune.space",
    "TaskData": "prl_tune.training",
    "load_task": "prl_tune.training",
    "train": "prl_tune.training",
    "build_optimizer": "prl_tune.training",
    "select_device": "prl_tune.training",
    "EpochMetrics": "prl_tune.training",
    "TrainResult": "prl_tune.training",
    "StudySpec": "prl_tune.config",
    "InstabilityPruner": "prl_tune.hosts.optuna",
    "InstabilityScheduler": "prl_tune.hosts.ray",
    "StudySearcher": "prl_tune.hosts.ray",
    "OptimizerConfig": "prl_tune.training",
    "StabilityRules": "prl_tune.stability",
    "range_test": "prl_tune.lr_finder",
    "load_spec": "prl_tune.config",
    "SpecError": "prl_tune.config",
    "run_study": "prl_tune.hosts.optuna",
    "run_study_ray": "prl_tune.hosts.ray",
}

__all__ = [
    "PLRS",
    "SCHEDULER_NAMES",
    "EpochMetrics",
    "InstabilityPruner",
    "InstabilityScheduler",
    "KneeLR",
    "OptimizerConfig",
    "PLRSSpace",
    "SchedulerSpace",
    "SpecError",
    "StabilityRules",
    "StudySearcher",
    "StudySpec",
    "TaskData",
    "TrainResult",
    "__version__",
    "build_optimizer",
    "build_scheduler",
    "load_spec",
    "load_task",
    "range_test",
    "run_study",
    "run_study_ray",
    "select_device",
    "train",
]

if TYPE_CHECKING:
    from prl_tune.config import SpecError, StudySpec, load_spec
    from prl_tune.hosts.optuna import InstabilityPruner, run_study
    from prl_tune.hosts.ray import InstabilityScheduler, StudySearcher, run_study_ray
    from prl_tune.lr_finder import range_test
    from prl_tune.schedulers import PLRS, SCHEDULER_NAMES, KneeLR, build_scheduler
    from prl_tune.space import PLRSSpace, SchedulerSpace
    from prl_tune.stability import StabilityRules
    from prl_tune.training import (
        EpochMetrics,
        OptimizerConfig,
        TaskData,
        TrainResult,
        build_optimizer,
        load_task,
        select_device,
        train,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prl_tune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
