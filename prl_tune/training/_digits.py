"""The built-in ``digits`` task: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from prl_tune._checks import choice, integer
from prl_tune.training._inmemory import he_initialized, inmemory_task
from prl_tune.training._split import check_fractions, stratified_split
from prl_tune.training._taskdata import TaskData

DIGITS_MODELS: tuple[str, ...] = ("cnn", "mlp")

_NUM_CLASSES = 10


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
    return stratified_split(_digits_data()[1], val_fraction, test_fraction)


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
    return he_initialized(network)


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
        value, test = check_fractions(self.val_fraction, self.test_fraction)
        object.__setattr__(self, "val_fraction", value)
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
    splits = _digits_split(options.val_fraction, options.test_fraction)
    return inmemory_task(
        lambda: _build_model(options.model),
        splits,
        seed=seed,
        device=device,
        batch_size=options.batch_size,
        num_classes=_NUM_CLASSES,
    )
