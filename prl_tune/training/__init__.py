"""Layer 2: the built-in tasks and the one training loop every backend runs."""

from __future__ import annotations

from prl_tune.training._device import check_device_name, select_device
from prl_tune.training._digits import DigitsOptions
from prl_tune.training._loop import EpochMetrics, TrainResult, chance_level, train
from prl_tune.training._optim import OPTIMIZER_NAMES, OPTIMIZERS, OptimizerConfig, build_optimizer
from prl_tune.training._shapes import SHAPES, ShapesOptions
from prl_tune.training._task import (
    BUILTIN_TASKS,
    TASK_NAMES,
    load_task,
    resolve_task,
    task_options,
)
from prl_tune.training._taskdata import TaskData

__all__ = [
    "BUILTIN_TASKS",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "SHAPES",
    "TASK_NAMES",
    "DigitsOptions",
    "EpochMetrics",
    "OptimizerConfig",
    "ShapesOptions",
    "TaskData",
    "TrainResult",
    "build_optimizer",
    "chance_level",
    "check_device_name",
    "load_task",
    "resolve_task",
    "select_device",
    "task_options",
    "train",
]
