"""The built-in ``digits`` task: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from prl_tune._checks import ArgumentValueError, choice, integer, real
from prl_tune.training._taskdata import TaskData

DIGITS_MODELS: tuple[str, ...] = ("cnn", "mlp")

# The split never depends on the trial's seed, so every trial is scored on the same samples.
_SPLIT_SEED = 0
_NUM_CLASSES = 10
_VAL_BATCH_SIZE = 512


class _TensorBatches:
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


@functools.cache
def _digits_data() -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, 1, 8, 8)`` scaled to ``[0, 1]`` and their labels, loaded once."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = data.target.astype(np.int64)
    for array in (images, labels):
        array.setflags(write=False)
    return images, labels


@functools.cache
def split_indices(
    val_fraction: float, test_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample indices of the training, validation and test splits (stratified, fixed seed).

    The test split is drawn first, then the validation split from the rest, each as a share of
    all samples. Without a test split (``test_fraction = 0``) the training and validation
    splits are the ones the task has always had; the test indices are then empty.
    """
    from sklearn.model_selection import train_test_split

    labels = _digits_data()[1]
    rest = np.arange(labels.shape[0])
    test = rest[:0]
    try:
        if test_fraction > 0:
            rest, test = train_test_split(
                rest, test_size=test_fraction, stratify=labels, random_state=_SPLIT_SEED
            )
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1.0 - test_fraction),
            stratify=labels[rest],
            random_state=_SPLIT_SEED,
        )
    except ValueError as error:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave too few "
            f"samples per class: {error}"
        ) from error
    for array in (train, val, test):
        array.setflags(write=False)
    return train, val, test


@functools.cache
def _digits_split(val_fraction: float, test_fraction: float = 0.0) -> tuple[np.ndarray, ...]:
    """Split and standardize (with the training split's mean and sd) once per process:
    ``(x_train, y_train, x_val, y_val, x_test, y_test)``."""
    images, labels = _digits_data()
    train, val, test = split_indices(val_fraction, test_fraction)
    x_train = images[train]
    mean, std = float(x_train.mean()), float(x_train.std())
    arrays = tuple(
        array
        for index in (train, val, test)
        for array in ((images[index] - mean) / std, labels[index])
    )
    for array in arrays:
        array.setflags(write=False)  # shared by every task of this process
    return arrays


def _build_model(name: str) -> torch.nn.Module:
    """The network, He-initialized (as ResNets are): it learns fast from the first epoch."""
    if name == "cnn":
        network = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(32 * 4 * 4, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, _NUM_CLASSES),
        )
    else:
        network = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, _NUM_CLASSES),
        )
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    return network


@dataclass(frozen=True)
class DigitsOptions:
    """The options of the ``digits`` task, checked here.

    Args:
        model: ``"cnn"`` (default: two 3x3 convolutions, max-pooling, two linear layers) or
            ``"mlp"`` (64-128-10 with ReLU).
        batch_size: Training samples per batch, ``>= 1`` (default 64); the last partial batch
            is kept.
        val_fraction: Share of the samples held out for validation, in ``(0, 1)`` (default
            0.2); the split is stratified and the same for every seed.
        test_fraction: Share of the samples held out as a test split, in ``[0, 1)`` with
            ``val_fraction + test_fraction < 1`` (default 0: no test split, and the training
            and validation splits are exactly those without this option). With a test split
            the task's ``test_loader`` serves it; ``prl-tune compare`` sets 0.2.
    """

    model: str = "cnn"
    batch_size: int = 64
    val_fraction: float = 0.2
    test_fraction: float = 0.0

    def __post_init__(self) -> None:
        choice("model", self.model, DIGITS_MODELS)
        integer("batch_size", self.batch_size, minimum=1)
        value = real(
            "val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        object.__setattr__(self, "val_fraction", value)
        test = real("test_fraction", self.test_fraction, low=0.0, high=1.0, high_open=True)
        if value + test >= 1.0:
            raise ArgumentValueError(
                "test_fraction",
                f"must leave training samples (val_fraction + test_fraction < 1) but got "
                f"{self.test_fraction!r} with val_fraction {self.val_fraction!r}.",
            )
        object.__setattr__(self, "test_fraction", test)


def load_digits_task(
    *,
    seed: int,
    device: torch.device,
    model: str = "cnn",
    batch_size: int = 64,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
) -> TaskData:
    """Build the ``digits`` task: 1797 8x8 images of 10 digits, a small CNN or MLP.

    Pixels are scaled to ``[0, 1]`` and standardized with the training split's mean and
    standard deviation. Inputs have shape ``(batch, 1, 8, 8)``.

    Args:
        seed: Seeds the model's initialization and the per-epoch shuffling; the global torch
            RNG is left untouched.
        device: Where the model and all data tensors are placed.
        model, batch_size, val_fraction, test_fraction: The :class:`DigitsOptions`.
    """
    options = DigitsOptions(model, batch_size, val_fraction, test_fraction)
    x_train, y_train, x_val, y_val, x_test, y_test = _digits_split(
        options.val_fraction, options.test_fraction
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = _build_model(options.model)
    return TaskData(
        model=network.to(device),
        train_loader=_TensorBatches(
            torch.tensor(x_train, device=device),
            torch.tensor(y_train, device=device),
            batch_size,
            shuffle=True,
            seed=seed,
        ),
        val_loader=_TensorBatches(
            torch.tensor(x_val, device=device),
            torch.tensor(y_val, device=device),
            _VAL_BATCH_SIZE,
        ),
        num_classes=_NUM_CLASSES,
        test_loader=None
        if options.test_fraction == 0
        else _TensorBatches(
            torch.tensor(x_test, device=device),
            torch.tensor(y_test, device=device),
            _VAL_BATCH_SIZE,
        ),
    )
