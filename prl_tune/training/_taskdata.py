"""What a task is: a model with its data and loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor


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
        test_loader: Batches ``(inputs, targets)`` of a test split that no selection may see
            (default ``None``: the task has none). :func:`~prl_tune.training.train` evaluates
            it once, after the last epoch, and never during training; ``prl-tune compare``
            scores its re-trained configurations on it (without one, its table says that it
            reports validation scores).
    """

    model: torch.nn.Module
    train_loader: Iterable[tuple[Tensor, Tensor]]
    val_loader: Iterable[tuple[Tensor, Tensor]]
    loss_fn: Callable[[Tensor, Tensor], Tensor] = torch.nn.functional.cross_entropy
    num_classes: int | None = None
    test_loader: Iterable[tuple[Tensor, Tensor]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module but got {type(self.model).__name__}.")
        if self.num_classes is not None and self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 or None but got {self.num_classes}.")
