"""The built-in ``cifar10`` and ``cifar100`` tasks: the python-pickle folders that torchvision
reads (``cifar-10-batches-py``, ``cifar-100-python``), from the folder that holds them; nothing is
downloaded."""

from __future__ import annotations

import functools
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
from torch import Tensor

from prl_tune._checks import ArgumentTypeError, ArgumentValueError, choice, flag, integer, real
from prl_tune.training._augment import AugmentedBatches
from prl_tune.training._cifar_models import CIFAR_MODELS
from prl_tune.training._inmemory import TensorBatches, inmemory_task
from prl_tune.training._split import stratified_split
from prl_tune.training._taskdata import TaskData

#: The environment variable that gives the data folder when ``root`` is not set.
DATA_ENV = "PRL_TUNE_DATA"

_SIDE = 32
_PIXELS = 3 * _SIDE * _SIDE


@dataclass(frozen=True)
class _Layout:
    """Where one dataset's files are, and what they hold."""

    torchvision: str  # the torchvision class that reads the same folder
    folder: str
    train: tuple[str, ...]
    test: str
    contents: str  # the files, as a message shows them
    label_key: bytes
    classes: int


_LAYOUTS = {
    "cifar10": _Layout(
        "CIFAR10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{k}" for k in range(1, 6)),
        "test_batch",
        "data_batch_1..5, test_batch",
        b"labels",
        10,
    ),
    "cifar100": _Layout(
        "CIFAR100", "cifar-100-python", ("train",), "test", "train, test", b"fine_labels", 100
    ),
}


def _rule(layout: _Layout) -> str:
    """What ``root`` must be, as an error message says it."""
    return (
        f"must be a folder holding {layout.folder}/ ({layout.contents}), as torchvision's "
        f"{layout.torchvision}(root) reads"
    )


class _CifarUnpickler(pickle.Unpickler):
    """Rebuilds what a CIFAR file holds (a dict of bytes, lists, ints and numpy arrays) and
    refuses every other global. torchvision trusts these files and unpickles them with plain
    ``pickle.load``; the files are trusted here too, and this only makes a wrong one (or one
    that would run code) fail in one line instead."""

    _GLOBALS = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),  # files written with numpy 1
            ("numpy._core.multiarray", "_reconstruct"),  # numpy 2
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


class _Source:
    """One dataset's folder under a root, and the one-line error about it."""

    def __init__(self, dataset: str, root: str, shown: str) -> None:
        self.layout = _LAYOUTS[dataset]
        self.folder = Path(root).expanduser() / self.layout.folder
        self.shown = shown

    def error(self, problem: str) -> ArgumentValueError:
        return ArgumentValueError("root", f"{_rule(self.layout)}; got {self.shown} ({problem}).")

    def check(self) -> None:
        """Raise :meth:`error` unless every file of the layout is there (nothing is read)."""
        if not self.folder.is_dir():
            raise self.error(f"no {self.layout.folder} there")
        for name in (*self.layout.train, self.layout.test):
            if not (self.folder / name).is_file():
                raise self.error(f"{self.layout.folder}/{name} is missing")

    def read(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of the files ``names``,
        in order."""
        parts = [self._read(name) for name in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _read(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{self.layout.folder}/{name}"
        try:
            with (self.folder / name).open("rb") as file:
                batch = _CifarUnpickler(file, encoding="bytes").load()
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
            raise self.error(f"{where} is not a CIFAR pickle: {exc}") from exc
        key = self.layout.label_key
        if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
            keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise self.error(f"{where} holds {keys}, not a dict with b'data' and {key!r}")
        data, labels = batch[b"data"], np.asarray(batch[key])
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
            shown = getattr(data, "shape", None), getattr(data, "dtype", type(data).__name__)
            raise self.error(
                f"{where} holds b'data' of shape and type {shown}, not uint8 (N, 3072)"
            )
        if data.shape[1] != _PIXELS:
            raise self.error(f"{where} holds b'data' of shape {data.shape}, not (N, {_PIXELS})")
        classes = self.layout.classes
        if (
            labels.shape != (len(data),)
            or labels.dtype.kind not in "iu"
            or (len(labels) and (labels.min() < 0 or labels.max() >= classes))
        ):
            raise self.error(
                f"{where} holds {key!r} of shape {labels.shape}, not {len(data)} class indices "
                f"in [0, {classes})"
            )
        return data.reshape(-1, 3, _SIDE, _SIDE), labels.astype(np.int64)


def _channel_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images, exactly, from a histogram of
    each channel (no float copy of the images)."""
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256)
        mean = float(counts @ values / counts.sum())
        means.append(mean)
        stds.append(math.sqrt(float(counts @ (values - mean) ** 2 / counts.sum())))
    return means, stds


@functools.cache
def _cifar_split(
    dataset: str, root: str, val_fraction: float, limit: int | None
) -> tuple[tuple[np.ndarray, ...], tuple[list[float], list[float]]]:
    """Read, split and measure once per process: ``(x_train, y_train, x_val, y_val, x_test,
    y_test)`` (uint8 images) and the training images' per-channel ``(mean, std)``."""
    source = _Source(dataset, root, repr(root))
    images, labels = source.read(source.layout.train)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    try:
        train, val, _ = stratified_split(labels, val_fraction)
    except ValueError as exc:
        raise ArgumentValueError(
            "limit" if limit is not None else "val_fraction",
            f"must leave at least one image of every class in each split; got limit={limit}, "
            f"val_fraction={val_fraction} ({exc}).",
        ) from exc
    x_test, y_test = source.read((source.layout.test,))
    arrays = (images[train], labels[train], images[val], labels[val], x_test, y_test)
    for array in arrays:
        array.setflags(write=False)  # shared by every task of this process
    return arrays, _channel_statistics(arrays[0])


class _Standardize(torch.nn.Module):
    """Raw pixel values (0-255, any dtype) to float32 standardized per channel."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return (images.to(self.mean.dtype) - self.mean) / self.std


@dataclass(frozen=True)
class CifarOptions:
    """The options of the ``cifar10`` task (and, as :class:`Cifar100Options`, of ``cifar100``),
    checked here; the data folder is looked at (not read).

    The validation split is held out of the official training set (stratified, the same for
    every seed); the official test set (``test_batch``, ``test``) is the task's test split,
    always: ``prl-tune compare`` scores on it, a tuning trial never evaluates it. So these
    tasks take no ``test_fraction``.

    Args:
        root: The folder that holds ``cifar-10-batches-py/`` (``cifar-100-python/``), as
            torchvision's ``CIFAR10(root)`` (``CIFAR100(root)``) reads it; ``~`` is expanded,
            a relative path is relative to the working folder. ``None`` (default): the
            environment variable :data:`DATA_ENV` (``PRL_TUNE_DATA``). After the check it
            holds the root in use.
        model: ``"resnet20"`` (default), ``"resnet56"``, ``"resnet110"`` (He et al.'s CIFAR
            ResNets), ``"wrn16_4"`` or ``"wrn28_10"`` (wide ResNets); see
            :data:`~prl_tune.training.CIFAR_MODELS`.
        batch_size: Training images per batch, ``>= 1`` (default 128); the last partial batch
            is kept.
        val_fraction: Share of the training images held out for validation, in ``(0, 1)``
            (default 0.1: 5,000 of 50,000); each split holds at least one image per class.
        augment: Crop and flip every training batch (default True; see
            :class:`~prl_tune.training.AugmentedBatches`); evaluation batches never are.
        limit: Use only the first ``limit`` images of the training set, ``>= 2`` (default
            ``None``: all); for quick runs. The split is drawn from them; the test set stays
            whole.

    Raises:
        ValueError: A value out of range, or ``root`` (given, or from ``PRL_TUNE_DATA``)
            without the dataset's folder or one of its files: one line naming the layout.
    """

    dataset: ClassVar[str] = "cifar10"

    root: str | None = None
    model: str = "resnet20"
    batch_size: int = 128
    val_fraction: float = 0.1
    augment: bool = True
    limit: int | None = None

    def __post_init__(self) -> None:
        choice("model", self.model, tuple(CIFAR_MODELS))
        integer("batch_size", self.batch_size, minimum=1)
        value = real(
            "val_fraction", self.val_fraction, low=0.0, high=1.0, low_open=True, high_open=True
        )
        object.__setattr__(self, "val_fraction", value)
        flag("augment", self.augment)
        integer("limit", self.limit, minimum=2, optional=True)
        self._check_split_sizes()
        object.__setattr__(self, "root", self._checked_root())

    def _check_split_sizes(self) -> None:
        """Each split can hold one image per class (as scikit-learn counts them)."""
        classes = _LAYOUTS[self.dataset].classes
        images = 50000 if self.limit is None else self.limit
        val = math.ceil(self.val_fraction * images)
        if val < classes or images - val < classes:
            name = "val_fraction" if self.limit is None else "limit"
            raise ArgumentValueError(
                name,
                f"must leave at least {classes} training and {classes} validation images (one "
                f"per class) but got limit={self.limit} and val_fraction={self.val_fraction} "
                f"({images - val} and {val}).",
            )

    def _checked_root(self) -> str:
        """The root in use: ``root`` or ``PRL_TUNE_DATA``, with the dataset's files there."""
        if self.root is None:
            given = os.environ.get(DATA_ENV) or None
            if given is None:
                raise ArgumentValueError(
                    "root",
                    f"{_rule(_LAYOUTS[self.dataset])}, given in [task] params or by the "
                    f"{DATA_ENV} environment variable; got neither.",
                )
            shown = f"{DATA_ENV}={given!r}"
        elif isinstance(self.root, (str, os.PathLike)):
            given = os.fspath(self.root)
            shown = repr(given)
        else:
            raise ArgumentTypeError(
                "root",
                f"must be a path (a string) or None but got {self.root!r} "
                f"({type(self.root).__name__}).",
            )
        _Source(self.dataset, given, shown).check()
        return given


@dataclass(frozen=True)
class Cifar100Options(CifarOptions):
    """The options of the ``cifar100`` task: those of :class:`CifarOptions`, for the folder
    ``cifar-100-python/`` (``train``, ``test``; 100 classes, the fine labels)."""

    dataset: ClassVar[str] = "cifar100"


def _load_cifar(options: CifarOptions, *, seed: int, device: torch.device) -> TaskData:
    layout = _LAYOUTS[options.dataset]
    root = str(Path(cast(str, options.root)).expanduser().resolve())  # one cache key per folder
    arrays, (mean, std) = _cifar_split(options.dataset, root, options.val_fraction, options.limit)
    task = inmemory_task(
        lambda: torch.nn.Sequential(
            _Standardize(mean, std), CIFAR_MODELS[options.model](layout.classes)
        ),
        arrays,
        seed=seed,
        device=device,
        batch_size=options.batch_size,
        num_classes=layout.classes,
    )
    if options.augment:
        plain = cast(TensorBatches, task.train_loader)
        task.train_loader = AugmentedBatches(
            plain.inputs, plain.targets, options.batch_size, seed=seed
        )
    return task


def load_cifar10_task(
    *,
    seed: int,
    device: torch.device,
    root: str | None = None,
    model: str = "resnet20",
    batch_size: int = 128,
    val_fraction: float = 0.1,
    augment: bool = True,
    limit: int | None = None,
) -> TaskData:
    """Build the ``cifar10`` task: 32x32 colour images of 10 classes, a CIFAR ResNet.

    Example:
        >>> task = load_task("cifar10", seed=0, root="~/data")  # ~/data/cifar-10-batches-py
        >>> task.num_classes, len(task.train_loader)
        (10, 352)

    The images stay uint8 on ``device`` (150 MB for the training set: the whole dataset lives
    there, and many trials can share a GPU); the loaders yield raw ``(batch, 3, 32, 32)`` uint8
    images and the model's first layer standardizes them with the training split's per-channel
    mean and standard deviation. Training batches are randomly cropped (4-pixel zero padding)
    and flipped on ``device``; the validation and test batches are not.

    Args:
        seed: Seeds the model's initialization, the per-epoch shuffling and the augmentation;
            the global torch RNG is left untouched.
        device: Where the model and all data tensors are placed.
        root, model, batch_size, val_fraction, augment, limit: The :class:`CifarOptions`.
    """
    options = CifarOptions(root, model, batch_size, val_fraction, augment, limit)
    return _load_cifar(options, seed=seed, device=device)


def load_cifar100_task(
    *,
    seed: int,
    device: torch.device,
    root: str | None = None,
    model: str = "resnet20",
    batch_size: int = 128,
    val_fraction: float = 0.1,
    augment: bool = True,
    limit: int | None = None,
) -> TaskData:
    """Build the ``cifar100`` task: 32x32 colour images of 100 classes (the fine labels), as
    :func:`load_cifar10_task` builds ``cifar10``, from ``cifar-100-python/``.

    Args:
        seed: Seeds the model's initialization, the per-epoch shuffling and the augmentation.
        device: Where the model and all data tensors are placed.
        root, model, batch_size, val_fraction, augment, limit: The :class:`Cifar100Options`.
    """
    options = Cifar100Options(root, model, batch_size, val_fraction, augment, limit)
    return _load_cifar(options, seed=seed, device=device)
