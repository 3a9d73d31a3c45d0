"""Choosing the torch device a task and its training run live on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from prl_tune._checks import ArgumentTypeError, ArgumentValueError

_DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device_name(spec: str | torch.device) -> torch.device | None:
    """The ``torch.device`` that ``spec`` names (``None`` for ``"auto"``), without checking that
    this machine has it.

    Raises:
        TypeError: ``spec`` is neither a str nor a ``torch.device``.
        ValueError: ``spec`` is not ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` or
            ``"mps"``.
    """
    if isinstance(spec, str) and spec == "auto":
        return None
    if not isinstance(spec, (str, torch.device)):
        raise ArgumentTypeError(
            "device", f"must be a str or torch.device but got {type(spec).__name__}."
        )
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in _DEVICE_TYPES:
        raise ArgumentValueError(
            "device", f"must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps' but got {spec!r}."
        )
    return device


def select_device(spec: str | torch.device = "auto") -> torch.device:
    """Resolve a device specification to a ``torch.device`` that exists on this machine.

    Example:
        >>> select_device("cpu")
        device(type='cpu')

    Args:
        spec: ``"auto"`` (default) picks ``"cuda"`` when ``torch.cuda.is_available()`` and
            ``"cpu"`` otherwise. ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` and ``"mps"`` (or the
            equivalent ``torch.device``) are accepted as they are, after checking that the
            device exists; there is no silent fallback to the CPU.

    Raises:
        ValueError: ``spec`` is not a device name, or names a device this machine lacks.
    """
    device = check_device_name(spec)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} requires CUDA but torch.cuda.is_available() is False."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device index must be below the {count} visible CUDA device(s) but got {spec!r}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {spec!r} requires MPS but torch.backends.mps.is_available() is False."
        )
    return device


@contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Run the block with torch's intra-op CPU threads set to ``count``; the caller's count is
    restored afterwards. The count changes the order of floating-point reductions, so a CPU
    run is repeatable exactly only with the same count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
