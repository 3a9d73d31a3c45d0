"""A task held in memory, as the built-in tasks are: mini-batches over tensors already on their
device, the networks' He initialization, and the :class:`TaskData` of split arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prl_tune.training._taskdata import TaskData

_EVAL_BATCH_SIZE = 512


class TensorBatches:
    """Mini-batches over tensors already on their device; re-iterable, one pass per epoch.

    With ``shuffle`` the order is redrawn at the start of every pass from the loader's own
    ``torch.Generator`` seeded with ``seed``, so two loaders with the same seed yield the same
    sequence of epochs. The last partial batch is kept.

    Args:
        inputs: Samples along dimension 0.
        targets: One target per sample, on the same device as ``inputs``.
        batch_size: Samples per batch, ``>= 1``.
        shuffle: Reshuffle on every pass (default False: the stored order).
        seed: Seeds the shuffling generator (default 0).
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self._generator = torch.Generator().manual_seed(seed) if shuffle else None

    def __len__(self) -> int:
        return -(-self.inputs.shape[0] // self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        """The shuffling generator's state (``None`` without shuffling), to resume a run."""
        return {"generator": None if self._generator is None else self._generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`: the next passes draw the orders they would have drawn."""
        if self._generator is not None and state["generator"] is not None:
            self._generator.set_state(state["generator"])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        count = self.inputs.shape[0]
        if self._generator is None:
            for start in range(0, count, self.batch_size):
                stop = start + self.batch_size
                yield self.inputs[start:stop], self.targets[start:stop]
            return
        order = torch.randperm(count, generator=self._generator).to(self.inputs.device)
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.inputs[index], self.targets[index]


def he_initialized(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` with its convolutions and linear layers He-initialized (as ResNets are, so a
    ReLU network learns from the first epoch) and zero biases."""
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return network


def inmemory_task(
    build_network: Callable[[], torch.nn.Module],
    splits: tuple[np.ndarray, ...],
    *,
    seed: int,
    device: torch.device,
    batch_size: int,
    num_classes: int,
) -> TaskData:
    """The :class:`TaskData` of a built-in task from its split arrays.

    Args:
        build_network: Builds the model; called under ``torch.manual_seed(seed)`` with the
            global torch RNG restored afterwards.
        splits: ``(x_train, y_train, x_val, y_val, x_test, y_test)``; an empty test split gives
            ``test_loader=None``. Copied to ``device``, so a task may change its own tensors.
        seed: Seeds the model's initialization and the shuffling of the training batches.
        device: Where the model and the tensors are placed.
        batch_size: Training samples per batch (evaluation batches hold 512).
        num_classes: The number of classes.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = build_network()
    x_train, y_train, x_val, y_val, x_test, y_test = (
        torch.tensor(array, device=device) for array in splits
    )
    return TaskData(
        model=network.to(device),
        train_loader=TensorBatches(x_train, y_train, batch_size, shuffle=True, seed=seed),
        val_loader=TensorBatches(x_val, y_val, _EVAL_BATCH_SIZE),
        num_classes=num_classes,
        test_loader=None if len(y_test) == 0 else TensorBatches(x_test, y_test, _EVAL_BATCH_SIZE),
    )
