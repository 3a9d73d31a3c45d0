"""The optimizers a training run can use (the scheduler sets their learning rate)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.optim.optimizer import ParamsT

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adamw")


def build_optimizer(
    params: ParamsT,
    name: str = "sgd",
    *,
    lr: float = 0.1,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    betas: tuple[float, float] | None = None,
    eps: float | None = None,
) -> torch.optim.Optimizer:
    """Build an optimizer by name, rejecting options that do not apply to it.

    Example:
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = build_optimizer(model.parameters(), "sgd", momentum=0.9, nesterov=True)

    Args:
        params: The parameters (or parameter groups) to optimize.
        name: One of :data:`OPTIMIZER_NAMES`: ``"sgd"`` (plain, or with ``momentum``) or
            ``"adamw"``.
        lr: The initial learning rate (default 0.1). A scheduler built on the optimizer
            overwrites it, so it is only a placeholder there.
        momentum: SGD momentum in ``[0, 1)`` (default 0.0); SGD only.
        nesterov: Nesterov momentum (default False); SGD only, needs ``momentum > 0``.
        weight_decay: L2 penalty for SGD, decoupled decay for AdamW; ``>= 0`` (default 0.0).
        betas: AdamW's ``(beta1, beta2)``, each in ``[0, 1)``; AdamW only. ``None`` (default)
            means ``(0.9, 0.999)``.
        eps: AdamW's denominator term, ``> 0``; AdamW only. ``None`` (default) means ``1e-8``.

    Raises:
        ValueError: An unknown ``name``, a value out of range, or an option the optimizer
            does not have.
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_NAMES} but got {name!r}.")
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0 but got {lr}.")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0 but got {weight_decay}.")
    if name == "sgd":
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1) but got {momentum}.")
        if nesterov and momentum == 0.0:
            raise ValueError(f"nesterov needs momentum > 0 but got momentum={momentum}.")
        for option, value in (("betas", betas), ("eps", eps)):
            if value is not None:
                raise ValueError(
                    f"{option} applies to 'adamw' only but got {option}={value} for 'sgd'."
                )
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    if momentum != 0.0 or nesterov:
        raise ValueError(
            f"momentum and nesterov apply to 'sgd' only but got momentum={momentum}, "
            f"nesterov={nesterov} for 'adamw'."
        )
    betas = (0.9, 0.999) if betas is None else betas
    eps = 1e-8 if eps is None else eps
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"betas must be two numbers in [0, 1) but got {betas}.")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0 but got {eps}.")
    return torch.optim.AdamW(
        params, lr=lr, betas=(betas[0], betas[1]), eps=eps, weight_decay=weight_decay
    )
