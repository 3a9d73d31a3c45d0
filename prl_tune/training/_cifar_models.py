"""The CIFAR networks in plain torch: the ResNets of He et al. (2016) for CIFAR and a wide ResNet
(Zagoruyko and Komodakis, 2016)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch
from torch import Tensor, nn

from prl_tune._checks import ArgumentValueError, integer, real
from prl_tune.training._inmemory import he_initialized


def _conv3x3(channels_in: int, channels_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; an option-A shortcut: the identity, subsampled by 2
    and zero-padded with the new channels where the block changes size (no parameters)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels_in, channels_out, stride)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = _conv3x3(channels_out, channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.stride, self.extra = stride, channels_out - channels_in

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return torch.relu(out + shortcut)


def resnet_cifar(depth: int, num_classes: int = 10) -> nn.Sequential:
    """The CIFAR ResNet of He et al. (2016, section 4.2), He-initialized.

    A 3x3 convolution with 16 channels, three stages of ``n = (depth - 2) / 6`` basic blocks with
    16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps, global average pooling and a linear
    layer: ``6n + 2`` weighted layers. Shortcuts are option A (the identity, zero-padded with the
    new channels; no parameters), as in the paper's CIFAR table: 0.27M parameters for ResNet-20,
    0.85M for ResNet-56 and 1.7M for ResNet-110 with 10 classes.

    Example:
        >>> sum(p.numel() for p in resnet_cifar(20).parameters())
        269722

    Args:
        depth: ``6n + 2`` for an ``n >= 1``: 20, 32, 44, 56, 110, ...
        num_classes: Outputs of the last layer, ``>= 2`` (default 10).
    """
    integer("depth", depth, minimum=8)
    if (depth - 2) % 6:
        raise ArgumentValueError("depth", f"must be 6n + 2 (20, 56, 110, ...) but got {depth}.")
    integer("num_classes", num_classes, minimum=2)
    blocks, width = [], 16
    for stage, channels in enumerate((16, 32, 64)):
        for index in range((depth - 2) // 6):
            blocks.append(_BasicBlock(width, channels, 2 if stage and not index else 1))
            width = channels
    network = nn.Sequential(
        _conv3x3(3, 16),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        *blocks,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    he_initialized(network)
    return network


class _WideBlock(nn.Module):
    """A pre-activation block: BatchNorm, ReLU, 3x3 convolution, twice, dropout between; a 1x1
    convolution on the shortcut where the block changes size."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels_in)
        self.conv1 = _conv3x3(channels_in, channels_out, stride)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.conv2 = _conv3x3(channels_out, channels_out)
        self.dropout = nn.Dropout(dropout)
        same = channels_in == channels_out and stride == 1
        self.shortcut = (
            None if same else nn.Conv2d(channels_in, channels_out, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        activated = torch.relu(self.bn1(x))
        out = self.conv2(self.dropout(torch.relu(self.bn2(self.conv1(activated)))))
        return out + (x if self.shortcut is None else self.shortcut(activated))


def wide_resnet(
    depth: int = 16, widen: int = 4, num_classes: int = 10, dropout: float = 0.0
) -> nn.Sequential:
    """The wide ResNet WRN-``depth``-``widen`` of Zagoruyko and Komodakis (2016), He-initialized.

    A 3x3 convolution with 16 channels, three stages of ``n = (depth - 4) / 6`` pre-activation
    blocks with ``16k``, ``32k`` and ``64k`` channels (``k = widen``), BatchNorm and ReLU,
    global average pooling and a linear layer. WRN-16-4 has 2.7M parameters, WRN-28-10 36.5M.

    Example:
        >>> round(sum(p.numel() for p in wide_resnet(16, 4).parameters()) / 1e6, 2)
        2.75

    Args:
        depth: ``6n + 4`` for an ``n >= 1``: 16, 22, 28, 40, ... (default 16).
        widen: The width factor ``k >= 1`` (default 4).
        num_classes: Outputs of the last layer, ``>= 2`` (default 10).
        dropout: Dropout between the two convolutions of a block, in ``[0, 1)`` (default 0).
    """
    integer("depth", depth, minimum=10)
    if (depth - 4) % 6:
        raise ArgumentValueError("depth", f"must be 6n + 4 (16, 22, 28, ...) but got {depth}.")
    integer("widen", widen, minimum=1)
    integer("num_classes", num_classes, minimum=2)
    dropout = real("dropout", dropout, low=0.0, high=1.0, high_open=True)
    blocks, width = [], 16
    for stage, channels in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for index in range((depth - 4) // 6):
            blocks.append(_WideBlock(width, channels, 2 if stage and not index else 1, dropout))
            width = channels
    network = nn.Sequential(
        _conv3x3(3, 16),
        *blocks,
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )
    he_initialized(network)
    return network


#: The networks of the CIFAR tasks by name: each builds one for a number of classes.
CIFAR_MODELS: Mapping[str, Callable[[int], nn.Module]] = MappingProxyType(
    {
        "resnet20": lambda classes: resnet_cifar(20, classes),
        "resnet56": lambda classes: resnet_cifar(56, classes),
        "resnet110": lambda classes: resnet_cifar(110, classes),
        "wrn16_4": lambda classes: wide_resnet(16, 4, classes),
        "wrn28_10": lambda classes: wide_resnet(28, 10, classes),
    }
)
