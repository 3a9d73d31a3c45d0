"""Loading a task by name: a built-in one, or a user's ``"package.module:function"``."""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import torch

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, known_keys, text
from prl_tune.training._cifar import (
    Cifar100Options,
    CifarOptions,
    load_cifar10_task,
    load_cifar100_task,
)
from prl_tune.training._device import select_device
from prl_tune.training._digits import DigitsOptions, load_digits_task
from prl_tune.training._shapes import ShapesOptions, load_shapes_task
from prl_tune.training._taskdata import TaskData

#: The built-in tasks: the dataclass of each one's options and its loader.
BUILTIN_TASKS: Mapping[str, tuple[type, Callable[..., TaskData]]] = MappingProxyType(
    {
        "digits": (DigitsOptions, load_digits_task),
        "shapes": (ShapesOptions, load_shapes_task),
        "cifar10": (CifarOptions, load_cifar10_task),
        "cifar100": (Cifar100Options, load_cifar100_task),
    }
)
TASK_NAMES: tuple[str, ...] = tuple(BUILTIN_TASKS)
"""Names of the built-in tasks (a view of :data:`BUILTIN_TASKS`)."""

_USER_TASK = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def resolve_task(name: str) -> Callable[..., Any]:
    """The function that builds task ``name``; a user module is imported, nothing is called.

    Raises:
        ValueError: An unknown built-in, a malformed name, a module that cannot be imported or
            that lacks the function (the error's ``argument`` is ``"task"``).
        TypeError: ``name`` is not a string, or names something that is not callable.
    """
    if not isinstance(name, str):
        raise ArgumentTypeError("task", f"must be a str but got {type(name).__name__}.")
    if ":" not in name:
        if name not in BUILTIN_TASKS:
            raise ArgumentValueError(
                "task",
                f"must be one of the built-in tasks {TASK_NAMES} or 'package.module:function' "
                f"but got {name!r}.",
            )
        return BUILTIN_TASKS[name][1]
    if not _USER_TASK.match(name):
        raise ArgumentValueError(
            "task",
            "must have the form 'package.module:function' (dotted module path, one colon, a "
            f"function name) but got {name!r}.",
        )
    module_name, function_name = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ArgumentValueError(
            "task", f"module {module_name!r} cannot be imported ({error}); got {name!r}."
        ) from error
    function = getattr(module, function_name, None)
    if function is None:
        raise ArgumentValueError(
            "task", f"module {module_name!r} has no function {function_name!r}; got {name!r}."
        )
    if not callable(function):
        raise ArgumentTypeError(
            "task",
            f"must name a function but {function_name!r} is a {type(function).__name__}; "
            f"got {name!r}.",
        )
    return function


def task_options(name: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check the options of task ``name`` without loading it; returns them unchanged.

    A built-in task's options are checked by its options dataclass (unknown keys and values);
    a user task receives its options as they are, so only the user's function can check them.

    Raises:
        ValueError, TypeError: A bad option (the error's ``argument`` is the option's key).
    """
    text("task", name)
    if name in BUILTIN_TASKS:
        options = BUILTIN_TASKS[name][0]
        known_keys(params, [f.name for f in dataclasses.fields(options)], owner=f"task {name!r}")
        options(**params)
    return params


def load_task(
    name: str, *, seed: int = 0, device: torch.device | str = "cpu", **params: Any
) -> TaskData:
    """Load a built-in task, or a user's task given as ``"package.module:function"``.

    Example:
        >>> task = load_task("digits", seed=1, model="mlp", batch_size=128)
        >>> task.num_classes
        10

    A user task is a function called as ``function(seed=seed, device=device, **params)``
    (``device`` resolved to a ``torch.device``) that returns a :class:`TaskData`. Exceptions it
    raises propagate unchanged.

    Args:
        name: One of :data:`TASK_NAMES` or ``"package.module:function"``.
        seed: Seeds the model's initialization and the shuffling of the training batches; the
            train/validation split of a built-in task does not depend on it (default 0).
        device: Where the task's model and in-memory data are placed; anything
            :func:`~prl_tune.training.select_device` accepts, ``"auto"`` included (default
            ``"cpu"``).
        params: Task options, e.g. ``model``, ``batch_size``, ``val_fraction`` and
            ``test_fraction`` for ``"digits"`` (see :class:`~prl_tune.training.DigitsOptions`);
            ``"shapes"`` also takes ``samples``, ``noise`` and ``label_noise`` (see
            :class:`~prl_tune.training.ShapesOptions`); ``"cifar10"`` and ``"cifar100"`` take
            ``root``, ``model``, ``batch_size``, ``val_fraction``, ``augment`` and ``limit``
            (see :class:`~prl_tune.training.CifarOptions`).

    Raises:
        ValueError: A malformed name, an unknown built-in, an unknown option of a built-in
            task, or a user module that cannot be imported.
        TypeError: The user's function is not callable or returns something else than a
            :class:`TaskData`.
    """
    function = resolve_task(name)
    task_options(name, params)
    task = function(seed=seed, device=select_device(device), **params)
    if not isinstance(task, TaskData):
        raise TypeError(f"task {name!r} must return a TaskData but returned {task!r:.200}.")
    return task
