"""Writing a learning rate into an optimizer's param groups (the one place that does it)."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer


def set_group_lr(group: dict[str, Any], lr: float, *, initial: bool = False) -> None:
    """Set one param group's ``lr`` (and, with ``initial``, its ``initial_lr``) to ``lr``.

    A value that is a tensor is filled in place, so compiled or capturable optimizers keep
    their reference to it. With ``initial``, a group without an ``initial_lr`` whose ``lr`` is a
    tensor gets a clone of that tensor (already holding ``lr``); otherwise a float is stored.
    """
    current = group["lr"]
    if isinstance(current, torch.Tensor):
        current.fill_(lr)
    else:
        group["lr"] = lr
    if not initial:
        return
    peak = group.get("initial_lr")
    if isinstance(peak, torch.Tensor):
        peak.fill_(lr)
    elif isinstance(current, torch.Tensor):
        group["initial_lr"] = current.clone()
    else:
        group["initial_lr"] = lr


def set_lr(optimizer: Optimizer, lr: float, *, initial: bool = False) -> None:
    """Set every param group's ``lr`` (and, with ``initial``, ``initial_lr``) to ``lr``.

    Args:
        optimizer: The optimizer whose param groups are written.
        lr: The learning rate to write.
        initial: Also set ``initial_lr``, the peak that torch's schedulers start from
            (default False).
    """
    for group in optimizer.param_groups:
        set_group_lr(group, lr, initial=initial)
