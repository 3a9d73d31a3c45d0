"""Layer 2: the built-in tasks and the one training loop every backend runs."""

from __future__ import annotations

from prl_tune.training._device import select_device
from prl_tune.training._loop import EpochMetrics, TrainResult, train
from prl_tune.training._optim import OPTIMIZER_NAMES, build_optimizer
from prl_tune.training._task import TASK_NAMES, TaskData, load_task

__all__ = [
    "OPTIMIZER_NAMES",
    "TASK_NAMES",
    "EpochMetrics",
    "TaskData",
    "TrainResult",
    "build_optimizer",
    "load_task",
    "select_device",
    "train",
]
