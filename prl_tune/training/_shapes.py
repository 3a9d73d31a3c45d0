"""The built-in ``shapes`` task: noisy 16x16 drawings of 10 shapes with noisy training labels,
generated in code (no download); harder than ``digits``, so learning-rate schedules separate."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from prl_tune._checks import ArgumentValueError, choice, integer, real
from prl_tune.training._inmemory import he_initialized, inmemory_task
from prl_tune.training._split import check_fractions, stratified_split
from prl_tune.training._taskdata import TaskData

SHAPES_MODELS: tuple[str, ...] = ("cnn", "mlp")

# The data never depends on the trial's seed: every trial sees the same images and labels.
_DATA_SEED = 0
_SIZE = 16

Outline = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _disc(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 0.85 - np.hypot(u, v)


def _ring(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return w - np.abs(np.hypot(u, v) - 0.75)


def _square(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 0.75 - np.maximum(np.abs(u), np.abs(v))


def _frame(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return w - np.abs(np.maximum(np.abs(u), np.abs(v)) - 0.7)


def _triangle(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    half = math.sqrt(3.0) / 2.0
    edges = np.minimum(v + 0.5, np.minimum(0.5 - half * u - 0.5 * v, 0.5 + half * u - 0.5 * v))
    return 0.8 * edges


def _plus(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    across = np.minimum(w - np.abs(v), 0.9 - np.abs(u))
    return np.maximum(np.minimum(w - np.abs(u), 0.9 - np.abs(v)), across)


def _bar(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.minimum(1.3 * w - np.abs(v), 0.95 - np.abs(u))


def _two_bars(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.minimum(w - np.abs(np.abs(v) - 0.5), 0.9 - np.abs(u))


def _corner(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    upright = np.minimum(w - np.abs(u + 0.5), 0.65 - np.abs(v - 0.15))
    return np.maximum(upright, np.minimum(w - np.abs(v + 0.5), 0.65 - np.abs(u - 0.15)))


def _half_disc(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.minimum(0.85 - np.hypot(u, v), v)


#: The classes in label order: each outline maps a shape's own coordinates (in units of its
#: radius) and stroke half-width to a level that is positive inside the shape.
SHAPES: tuple[tuple[str, Outline], ...] = (
    ("disc", _disc),
    ("ring", _ring),
    ("square", _square),
    ("frame", _frame),
    ("triangle", _triangle),
    ("plus", _plus),
    ("bar", _bar),
    ("two_bars", _two_bars),
    ("corner", _corner),
    ("half_disc", _half_disc),
)
_NUM_CLASSES = len(SHAPES)


def _render(samples: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` images ``(N, 1, 16, 16)`` and their labels (exactly balanced classes).

    The shapes and the pixel noise come from two independent streams of one fixed seed, so
    ``noise`` changes only the noise.
    """
    shape_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(_DATA_SEED).spawn(2)
    )
    labels = shape_rng.permutation(np.arange(samples) % _NUM_CLASSES)
    axis = (np.arange(_SIZE) + 0.5) / _SIZE * 2.0 - 1.0  # pixel centres in [-1, 1]
    y, x = np.meshgrid(axis, axis, indexing="ij")

    def draw(low: float, high: float) -> np.ndarray:
        return shape_rng.uniform(low, high, samples)[:, None, None]

    centre_x, centre_y = draw(-0.35, 0.35), draw(-0.35, 0.35)
    radius, angle, stroke = draw(0.5, 0.85), draw(0.0, 2.0 * math.pi), draw(0.15, 0.3)
    contrast = draw(0.4, 1.0)
    dx, dy = x - centre_x, y - centre_y
    u = (np.cos(angle) * dx + np.sin(angle) * dy) / radius
    v = (np.cos(angle) * dy - np.sin(angle) * dx) / radius
    level = np.empty((samples, _SIZE, _SIZE))
    for label, (_, outline) in enumerate(SHAPES):
        mine = labels == label
        level[mine] = outline(u[mine], v[mine], stroke[mine])
    # anti-aliased edges: a logistic ramp about a third of a pixel wide
    pixel = (2.0 / _SIZE) / radius
    images = contrast / (1.0 + np.exp(-level / (0.3 * pixel)))
    images += noise * noise_rng.standard_normal(images.shape)
    return images[:, None].astype(np.float32), labels.astype(np.int64)


@functools.cache
def _shapes_split(
    samples: int, noise: float, label_noise: float, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, ...]:
    """Render, split, corrupt the training labels and standardize once per process:
    ``(x_train, y_train, x_val, y_val, x_test, y_test)``."""
    images, labels = _render(samples, noise)
    train, val, test = stratified_split(labels, val_fraction, test_fraction)
    y_train = labels[train].copy()
    wrong = np.random.default_rng([_DATA_SEED, 1]).permutation(len(train))
    wrong = wrong[: round(label_noise * len(train))]
    # a different class, each of the other nine equally likely
    offsets = np.random.default_rng([_DATA_SEED, 2]).integers(1, _NUM_CLASSES, len(wrong))
    y_train[wrong] = (y_train[wrong] + offsets) % _NUM_CLASSES
    x_train = images[train]
    mean, std = float(x_train.mean()), float(x_train.std())
    arrays = (
        (x_train - mean) / std,
        y_train,
        (images[val] - mean) / std,
        labels[val],
        (images[test] - mean) / std,
        labels[test],
    )
    for array in arrays:
        array.setflags(write=False)  # shared by every task of this process
    return arrays


def _build_model(name: str) -> torch.nn.Module:
    """The network, He-initialized."""
    if name == "cnn":
        network = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, kernel_size=3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
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
            torch.nn.Linear(_SIZE * _SIZE, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, _NUM_CLASSES),
        )
    return he_initialized(network)


@dataclass(frozen=True)
class ShapesOptions:
    """The options of the ``shapes`` task, checked here.

    Args:
        model: ``"cnn"`` (default: two 3x3 convolutions of 16 and 32 channels, each followed by
            2x2 max-pooling, then 512-64-10 linear layers) or ``"mlp"`` (256-128-10 with ReLU).
        batch_size: Training samples per batch, ``>= 1`` (default 64); the last partial batch
            is kept.
        val_fraction: Share of the samples held out for validation, in ``(0, 1)`` (default
            0.2); the split is stratified and the same for every seed.
        test_fraction: Share of the samples held out as a test split, in ``[0, 1)`` with
            ``val_fraction + test_fraction < 1`` (default 0: no test split); ``prl-tune
            compare`` sets 0.2.
        samples: Images generated, an int ``>= 100`` (default 10000; with both fractions at
            0.2, 6000 of them train); every split must hold at least one image per class.
        noise: Standard deviation of the Gaussian pixel noise, ``>= 0`` (default 0.05; a shape's
            contrast is 0.4 to 1 on a background of 0).
        label_noise: Share of the *training* labels replaced by a different class, each of the
            other nine equally likely, in ``[0, 0.9)`` (default 0.3; below 0.9 the true class
            stays the most frequent label of every kind of image). Validation and test labels
            are never corrupted.
    """

    model: str = "cnn"
    batch_size: int = 64
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    samples: int = 10000
    noise: float = 0.05
    label_noise: float = 0.3

    def __post_init__(self) -> None:
        choice("model", self.model, SHAPES_MODELS)
        integer("batch_size", self.batch_size, minimum=1)
        val, test = check_fractions(self.val_fraction, self.test_fraction)
        object.__setattr__(self, "val_fraction", val)
        object.__setattr__(self, "test_fraction", test)
        integer("samples", self.samples, minimum=100)
        object.__setattr__(self, "noise", real("noise", self.noise, low=0.0))
        label_noise = real("label_noise", self.label_noise, low=0.0, high=0.9, high_open=True)
        object.__setattr__(self, "label_noise", label_noise)
        self._check_split_sizes()

    def _check_split_sizes(self) -> None:
        """Each split holds at least one image per class (as scikit-learn counts them)."""
        test = math.ceil(self.test_fraction * self.samples)
        rest = self.samples - test
        val = math.ceil(self.val_fraction / (1.0 - self.test_fraction) * rest)
        for name, count in (("test_fraction", test), ("val_fraction", val)):
            if (name == "val_fraction" or self.test_fraction > 0) and count < _NUM_CLASSES:
                raise ArgumentValueError(
                    name,
                    f"must hold at least {_NUM_CLASSES} of the {self.samples} samples (one per "
                    f"class) but got {getattr(self, name)!r} ({count} samples).",
                )
        if rest - val < _NUM_CLASSES:
            raise ArgumentValueError(
                "val_fraction",
                f"must leave at least {_NUM_CLASSES} training samples (one per class) but got "
                f"{self.val_fraction!r} with test_fraction {self.test_fraction!r} "
                f"({rest - val} of {self.samples} samples).",
            )


def load_shapes_task(
    *,
    seed: int,
    device: torch.device,
    model: str = "cnn",
    batch_size: int = 64,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    samples: int = 10000,
    noise: float = 0.05,
    label_noise: float = 0.3,
) -> TaskData:
    """Build the ``shapes`` task: noisy 16x16 images of 10 shapes, noisy training labels.

    Example:
        >>> task = load_task("shapes", seed=1, test_fraction=0.2)
        >>> task.num_classes, len(task.train_loader)
        (10, 94)

    Each image holds one shape of :data:`SHAPES` (disc, ring, square, frame, triangle, plus,
    bar, two bars, corner, half disc) at a random position, size (radius 4 to 7 pixels),
    rotation, stroke width and contrast, with anti-aliased edges and Gaussian pixel noise; the
    classes are exactly balanced. The images and labels
    are generated from a fixed seed, once per process, so they never depend on ``seed``.
    Pixels are standardized with the training split's mean and standard deviation. Inputs have
    shape ``(batch, 1, 16, 16)``.

    Args:
        seed: Seeds the model's initialization and the per-epoch shuffling; the global torch
            RNG is left untouched.
        device: Where the model and all data tensors are placed.
        model, batch_size, val_fraction, test_fraction, samples, noise, label_noise: The
            :class:`ShapesOptions`.
    """
    options = ShapesOptions(
        model, batch_size, val_fraction, test_fraction, samples, noise, label_noise
    )
    splits = _shapes_split(
        options.samples,
        options.noise,
        options.label_noise,
        options.val_fraction,
        options.test_fraction,
    )
    return inmemory_task(
        lambda: _build_model(options.model),
        splits,
        seed=seed,
        device=device,
        batch_size=options.batch_size,
        num_classes=_NUM_CLASSES,
    )
