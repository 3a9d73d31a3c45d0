"""Small tasks of different kinds, for the stability corpus and the pruning benchmark.

Every function here is a prl_tune user task (``"task_families:resnet"`` with ``benchmarks/`` on
``sys.path``): called as ``function(seed=, device=, batch_size=)``, it returns a
:class:`~prl_tune.training.TaskData`. The data are generated in code or shipped with
scikit-learn (nothing is downloaded); they are the same for every seed, and ``seed`` only sets
the model's initialization and the shuffling of the training batches.

Families (what differs between them is the point: architecture, normalization, input kind,
loss):

- ``digits_cnn`` / ``digits_mlp``: the built-in ``digits`` task (8x8 images, 10 classes).
- ``resnet``: a residual network with BatchNorm on the same digits images.
- ``sequence``: a 1-D convolutional ReLU network on synthetic signals, 10 classes (the
  frequency and phase pattern of a noisy waveform).
- ``transformer``: a one-layer attention encoder (LayerNorm, two heads) on token sequences,
  8 classes (the most frequent token).
- ``regression``: an MLP with MSE loss on scikit-learn's Friedman #1 problem, standardized
  targets; no chance level.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from prl_tune.training import TaskData, load_task

_TRAIN, _VAL = 1536, 512


class _Batches:
    """Re-iterable, shuffled, checkpointable batches of in-memory tensors."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, seed: int | None) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):  # type: ignore[no-untyped-def]
        n = len(self.x)
        order = (
            torch.arange(n)
            if self.generator is None
            else torch.randperm(n, generator=self.generator)
        )
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.x[index], self.y[index]


def _task(
    model: nn.Module,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    batch_size: int,
    seed: int,
    device: torch.device,
    *,
    num_classes: int | None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = nn.functional.cross_entropy,
) -> TaskData:
    x_train, y_train, x_val, y_val = (t.to(device) for t in data)
    return TaskData(
        model=model.to(device),
        train_loader=_Batches(x_train, y_train, batch_size, seed=seed),
        val_loader=_Batches(x_val, y_val, 256, seed=None),
        loss_fn=loss_fn,
        num_classes=num_classes,
    )


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def digits_cnn(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """The built-in digits CNN."""
    return load_task("digits", seed=seed, device=device, model="cnn", batch_size=batch_size)


def digits_mlp(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """The built-in digits MLP."""
    return load_task("digits", seed=seed, device=device, model="mlp", batch_size=batch_size)


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


def resnet(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """Two residual blocks with BatchNorm (16 channels) on the digits images."""
    digits = load_task("digits", seed=seed, device="cpu", batch_size=batch_size)
    x_train, y_train = _stacked(digits.train_loader)
    x_val, y_val = _stacked(digits.val_loader)

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            _Block(16),
            _Block(16),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        )

    model = _seeded(seed, build)
    return _task(model, (x_train, y_train, x_val, y_val), batch_size, seed, device, num_classes=10)


def _stacked(loader: object) -> tuple[Tensor, Tensor]:
    xs, ys = zip(*loader, strict=True)  # type: ignore[call-overload]
    return torch.cat(xs), torch.cat(ys)


@functools.cache
def _signals() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Noisy waveforms of length 64: class = (frequency 1..5) x (sine or square)."""
    rng = np.random.default_rng(12345)
    n = _TRAIN + _VAL
    labels = rng.integers(0, 10, n)
    freq = 1 + labels % 5
    t = np.linspace(0, 1, 64, endpoint=False)
    phase = rng.uniform(0, 2 * np.pi, n)[:, None]
    wave = np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase)
    square = labels >= 5
    wave[square] = np.sign(wave[square])
    x = wave + rng.normal(0, 0.6, wave.shape)
    x = torch.tensor(x, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(labels, dtype=torch.long)
    return x[:_TRAIN], y[:_TRAIN], x[_TRAIN:], y[_TRAIN:]


def sequence(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """A 1-D convolutional ReLU network on synthetic waveforms, 10 classes."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Conv1d(1, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(16, 32, 5, padding=2),
            nn.ReLU(),
            nn.AdaptiveMaxPool1d(4),
            nn.Flatten(),
            nn.Linear(128, 10),
        )

    return _task(_seeded(seed, build), _signals(), batch_size, seed, device, num_classes=10)


@functools.cache
def _tokens() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequences of 12 tokens from a vocabulary of 8; the label is the most frequent token."""
    rng = np.random.default_rng(54321)
    n = _TRAIN + _VAL
    x = rng.integers(0, 8, (n, 12))
    counts = np.stack([(x == k).sum(axis=1) for k in range(8)], axis=1)
    y = counts.argmax(axis=1)
    xt, yt = torch.tensor(x, dtype=torch.long), torch.tensor(y, dtype=torch.long)
    return xt[:_TRAIN], yt[:_TRAIN], xt[_TRAIN:], yt[_TRAIN:]


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(8, 32)
        self.position = nn.Parameter(torch.zeros(12, 32))
        self.encoder = nn.TransformerEncoderLayer(
            32, 2, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        self.head = nn.Linear(32, 8)

    def forward(self, x: Tensor) -> Tensor:
        h = self.encoder(self.embed(x) + self.position)
        return self.head(h.mean(dim=1))


def transformer(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """A one-layer transformer encoder on token sequences, 8 classes."""
    return _task(_seeded(seed, _Attention), _tokens(), batch_size, seed, device, num_classes=8)


@functools.cache
def _friedman() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=_TRAIN + _VAL, n_features=10, noise=1.0, random_state=7)
    x = (x - x[:_TRAIN].mean(axis=0)) / x[:_TRAIN].std(axis=0)
    y = (y - y[:_TRAIN].mean()) / y[:_TRAIN].std()
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32).unsqueeze(1)
    return xt[:_TRAIN], yt[:_TRAIN], xt[_TRAIN:], yt[_TRAIN:]


def regression(*, seed: int, device: torch.device, batch_size: int = 64) -> TaskData:
    """An MLP (10-64-64-1, ReLU) with MSE loss on Friedman #1, standardized targets."""

    def build() -> nn.Module:
        return nn.Sequential(
            nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
        )

    return _task(
        _seeded(seed, build),
        _friedman(),
        batch_size,
        seed,
        device,
        num_classes=None,
        loss_fn=nn.functional.mse_loss,
    )


FAMILIES: dict[str, Callable[..., TaskData]] = {
    "digits_cnn": digits_cnn,
    "digits_mlp": digits_mlp,
    "resnet": resnet,
    "sequence": sequence,
    "transformer": transformer,
    "regression": regression,
}
#: The chance-level loss of each classification family (``ln C``); regression has none.
CHANCE = {
    "digits_cnn": math.log(10),
    "digits_mlp": math.log(10),
    "resnet": math.log(10),
    "sequence": math.log(10),
    "transformer": math.log(8),
    "regression": None,
}
