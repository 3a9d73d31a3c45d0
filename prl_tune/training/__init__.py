"""Layer 2: the built-in tasks and the one training loop every backend runs."""

from __future__ import annotations

from prl_tune.training._augment import AugmentedBatches
from prl_tune.training._cifar import DATA_ENV, Cifar100Options, CifarOptions
from prl_tune.training._cifar_models import CIFAR_MODELS, resnet_cifar, wide_resnet
from prl_tune.training._device import check_device_name, cpu_threads, select_device
from prl_tune.training._digits import DigitsOptions
from prl_tune.training._loop import (
    PRECISIONS,
    EpochMetrics,
    TrainResult,
    chance_level,
    check_compile,
    train,
)
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
    "CIFAR_MODELS",
    "DATA_ENV",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "PRECISIONS",
    "SHAPES",
    "TASK_NAMES",
    "AugmentedBatches",
    "Cifar100Options",
    "CifarOptions",
    "DigitsOptions",
    "EpochMetrics",
    "OptimizerConfig",
    "ShapesOptions",
    "TaskData",
    "TrainResult",
    "build_optimizer",
    "chance_level",
    "check_compile",
    "check_device_name",
    "cpu_threads",
    "load_task",
    "resnet_cifar",
    "resolve_task",
    "select_device",
    "task_options",
    "train",
    "wide_resnet",
]
