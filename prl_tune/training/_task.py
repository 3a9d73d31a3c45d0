"""What a task is (model, data, loss) and how one is loaded by name."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from prl_tune.training._device import select_device

TASK_NAMES: tuple[str, ...] = ("digits",)

_USER_TASK = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


@dataclass
class TaskData:
    """A model with its data and loss: everything a training run needs besides its schedule.

    Example:
        >>> task = load_task("digits", seed=0)
        >>> len(task.train_loader)
        23

    Args:
        model: The model to train; :func:`~prl_tune.training.train` moves it to its device and
            trains it in place.
        train_loader: Batches ``(inputs, targets)``; iterated once per epoch (so it must be
            re-iterable, e.g. a ``torch.utils.data.DataLoader``), and ``len()`` must give the
            number of batches per epoch.
        val_loader: Batches ``(inputs, targets)`` for the end-of-epoch evaluation.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar mean loss (default
            ``torch.nn.functional.cross_entropy``).
        num_classes: The number of classes of a classification task (``None`` otherwise).
    """

    model: torch.nn.Module
    train_loader: Iterable[tuple[Tensor, Tensor]]
    val_loader: Iterable[tuple[Tensor, Tensor]]
    loss_fn: Callable[[Tensor, Tensor], Tensor] = torch.nn.functional.cross_entropy
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module but got {type(self.model).__name__}.")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 or None but got {self.num_classes}.")


def _builtin_loaders() -> dict[str, Callable[..., TaskData]]:
    from prl_tune.training._digits import load_digits_task

    return {"digits": load_digits_task}


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
        params: Task options, e.g. ``model``, ``batch_size`` and ``val_fraction`` for
            ``"digits"``.

    Raises:
        ValueError: A malformed name, an unknown built-in, an unknown option of a built-in
            task, or a user module that cannot be imported.
        TypeError: The user's function is not callable or returns something else than a
            :class:`TaskData`.
    """
    if not isinstance(name, str):
        raise TypeError(f"task must be a str but got {type(name).__name__}.")
    resolved = select_device(device)
    if ":" not in name:
        loaders = _builtin_loaders()
        if name not in loaders:
            raise ValueError(
                f"task must be one of the built-in tasks {TASK_NAMES} or 'package.module:function'"
                f" but got {name!r}."
            )
        loader = loaders[name]
        allowed = [p for p in inspect.signature(loader).parameters if p not in ("seed", "device")]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(
                f"task {name!r} accepts the options {allowed} but got unknown option(s) {unknown}."
            )
        return loader(seed=seed, device=resolved, **params)
    if not _USER_TASK.match(name):
        raise ValueError(
            "task must have the form 'package.module:function' (dotted module path, one colon, "
            f"a function name) but got {name!r}."
        )
    module_name, function_name = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"task {name!r}: cannot import module {module_name!r}: {error}") from error
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError(f"task {name!r}: module {module_name!r} has no {function_name!r}.")
    if not callable(function):
        raise TypeError(
            f"task {name!r} must name a function but {function_name!r} is a "
            f"{type(function).__name__}."
        )
    task = function(seed=seed, device=resolved, **params)
    if not isinstance(task, TaskData):
        raise TypeError(f"task {name!r} must return a TaskData but returned {task!r:.200}.")
    return task
