"""The standard CIFAR augmentation on the batch's own device: a random crop of the image padded
with 4 zero pixels on every side, and a random horizontal flip."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from prl_tune._checks import flag, integer
from prl_tune.training._inmemory import TensorBatches


def crop_and_flip(
    images: Tensor, top: Tensor, left: Tensor, flip: Tensor, *, padding: int = 4
) -> Tensor:
    """Each image padded with ``padding`` zeros on every side, the window of its own size at
    ``(top, left)`` of the padded image, mirrored left to right where ``flip``.

    One gather for the whole batch, on its device: no per-image loop, no host sync.
    ``top = left = padding`` with ``flip`` false gives the image back.

    Args:
        images: ``(batch, channels, height, width)``, any dtype (the padding is 0 in it).
        top: ``(batch,)`` integer row offsets in ``[0, 2 * padding]``, on the images' device.
        left: ``(batch,)`` integer column offsets in ``[0, 2 * padding]``, on the same device.
        flip: ``(batch,)`` bools, on the same device.
        padding: Zero pixels added on each side, ``>= 0`` (default 4).
    """
    _, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    rows = top[:, None] + torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device)
    columns = left[:, None] + torch.where(flip[:, None], width - 1 - columns, columns)
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None]
    # Advanced indices around a slice: the result is (batch, height, width, channels).
    window = padded[batch, :, rows[:, :, None], columns[:, None, :]]
    return window.permute(0, 3, 1, 2).contiguous()


class AugmentedBatches(TensorBatches):
    """Training mini-batches of images, each randomly cropped and flipped on its device.

    Every image of a pass gets its own crop offsets, two integers in ``[0, 2 * padding]``
    (a shift of at most ``padding`` pixels each way), and a flip with probability 1/2, as
    torchvision's ``RandomCrop(size, padding=4)`` and ``RandomHorizontalFlip()`` give (zero
    padding in the stored pixel values: black for raw 0-255 images). The whole pass is drawn at
    its start from the loader's own CPU ``torch.Generator`` seeded with ``seed`` (the order
    first, as :class:`TensorBatches` draws it, then the offsets and flips) and copied to the
    images' device once; each batch is then one gather there (:func:`crop_and_flip`), with no
    host work beyond slicing. So the same seed gives the same batches on every device, and
    :meth:`state_dict` (the generator's state) resumes a run bit-exactly. The last partial
    batch is kept.

    Example:
        >>> images = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
        >>> batches = AugmentedBatches(images, torch.zeros(10, dtype=torch.long), 4, seed=0)
        >>> [tuple(x.shape) for x, _ in batches]
        [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]

    Args:
        inputs: Images ``(samples, channels, height, width)``, on their device.
        targets: One target per image, on the same device.
        batch_size: Images per batch, ``>= 1``.
        shuffle: Reshuffle on every pass (default True).
        seed: Seeds the generator of the order, offsets and flips (default 0).
        padding: Zero pixels added on each side before cropping, ``>= 0`` (default 4).
        flip: Flip horizontally with probability 1/2 (default True).
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        if inputs.ndim != 4:
            raise ValueError(
                f"inputs must be images (samples, channels, height, width) but got shape "
                f"{tuple(inputs.shape)}."
            )
        super().__init__(inputs, targets, batch_size, shuffle=shuffle, seed=seed)
        # Drawn from with or without shuffling; the base class saves and restores its state.
        self._draws = torch.Generator().manual_seed(seed)
        self._generator = self._draws
        self.shuffle = flag("shuffle", shuffle)
        self.padding = integer("padding", padding, minimum=0)
        self.flip = flag("flip", flip)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        count = self.inputs.shape[0]
        generator = self._draws
        order = (
            torch.randperm(count, generator=generator)
            if self.shuffle
            else torch.arange(count, dtype=torch.long)
        )
        offsets = torch.randint(0, 2 * self.padding + 1, (2, count), generator=generator)
        flips = torch.randint(0, 2, (count,), generator=generator)
        if not self.flip:
            flips.zero_()
        draws = torch.cat([order[None], offsets, flips[None]]).to(self.inputs.device)
        for start in range(0, count, self.batch_size):
            index, top, left, flip = draws[:, start : start + self.batch_size]
            images = crop_and_flip(self.inputs[index], top, left, flip.bool(), padding=self.padding)
            yield images, self.targets[index]
