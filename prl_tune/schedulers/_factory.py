"""Build PLRS or one of the baselines compared in arXiv 2407.07613 from a name and params."""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingWarmRestarts,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
)

from prl_tune.schedulers._knee import KneeLR
from prl_tune.schedulers._plrs import PLRS

SCHEDULER_NAMES: tuple[str, ...] = ("plrs", "cosine", "onecycle", "knee", "multistep", "constant")
"""Names accepted by :func:`build_scheduler`."""

SCHEDULER_PARAMS: dict[str, tuple[str, ...]] = {
    "plrs": ("lr_min", "lr_max"),
    "cosine": ("lr",),
    "onecycle": ("lr",),
    "knee": ("lr",),
    "multistep": ("lr",),
    "constant": ("lr",),
}
"""Required params of each scheduler: ``lr_min`` and ``lr_max`` for PLRS, the peak ``lr`` else."""

SCHEDULER_DEFAULTS: dict[str, dict[str, Any]] = {
    "plrs": {"seed": None, "warmup_steps": 0},
    "cosine": {"T_0": 1, "T_mult": 2, "eta_min": 1e-4},
    "onecycle": {"pct_start": 0.45, "div_factor": 10.0, "final_div_factor": 10.0},
    "knee": {"explore_fraction": 0.5, "final_lr": 0.0},
    "multistep": {"milestones": (0.5, 0.75), "gamma": 0.1},
    "constant": {},
}
"""Optional params of each scheduler with their defaults (Appendix F of arXiv 2407.07613)."""


def _type_name(value: object) -> str:
    return type(value).__name__


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int but got {_type_name(value)} {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 but got {value}.")
    return int(value)


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float but got {_type_name(value)} {value!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite but got {value}.")
    return number


def _positive_real(name: str, value: object) -> float:
    number = _real(name, value)
    if number <= 0.0:
        raise ValueError(f"{name} must be finite and > 0 but got {value}.")
    return number


def _fraction(name: str, value: object, low: float, high: float) -> float:
    """A float in the closed interval ``[low, high]``."""
    number = _real(name, value)
    if not low <= number <= high:
        raise ValueError(f"{name} must be in [{low}, {high}] but got {value}.")
    return number


def _check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Reject unknown or missing params; return the params merged with the defaults."""
    required = SCHEDULER_PARAMS[name]
    defaults = SCHEDULER_DEFAULTS[name]
    unknown = sorted(set(params) - set(required) - set(defaults))
    if unknown:
        allowed = ", ".join([*required, *defaults])
        raise TypeError(
            f"build_scheduler({name!r}) got unknown params {unknown}; it takes {allowed}."
        )
    missing = [key for key in required if key not in params]
    if missing:
        raise TypeError(f"build_scheduler({name!r}) is missing the required params {missing}.")
    return {**defaults, **params}


def _set_peak_lr(optimizer: Optimizer, lr: float) -> None:
    """Set every group's ``lr`` and ``initial_lr`` to ``lr``; tensors are written in place."""
    for group in optimizer.param_groups:
        for key in ("lr", "initial_lr"):
            current = group.get(key)
            if isinstance(current, torch.Tensor):
                current.fill_(lr)
            elif key == "initial_lr" and isinstance(group["lr"], torch.Tensor):
                group[key] = group["lr"].clone()
            else:
                group[key] = lr


def build_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    **params: Any,
) -> LRScheduler:
    """Build the scheduler ``name`` for ``optimizer``, to be stepped once per optimizer step.

    Every scheduler but PLRS takes the peak LR as ``lr``; the factory writes it to each group's
    ``lr`` and ``initial_lr`` (in place for tensor LRs), so the optimizer's own LR does not
    matter. Durations in epochs or fractions of training are converted to steps with
    ``total_steps = epochs * steps_per_epoch``. The schedules and their defaults
    (:data:`SCHEDULER_DEFAULTS`, after Appendix F of arXiv 2407.07613):

    - ``plrs``: :class:`PLRS` with ``lr_min``, ``lr_max``, ``seed=None``, ``warmup_steps=0``.
    - ``cosine``: cosine annealing with warm restarts from ``lr`` down to ``eta_min=1e-4``;
      first period ``T_0=1`` epochs, each next one ``T_mult=2`` times longer (restarts after
      1, 3, 7, ... epochs).
    - ``onecycle``: three-phase one-cycle: linear from ``lr / div_factor`` up to ``lr`` over
      ``pct_start=0.45`` of training, back down over the next 45 %, then to
      ``lr / (div_factor * final_div_factor)`` at the end (``div_factor=10``,
      ``final_div_factor=10``, so ``lr / 100``); momentum is not cycled.
    - ``knee``: :class:`KneeLR`: ``lr`` for ``explore_fraction=0.5`` of training, then linear
      to ``final_lr=0.0``.
    - ``multistep``: ``lr``, multiplied by ``gamma=0.1`` at each of ``milestones=(0.5, 0.75)``
      (fractions of training).
    - ``constant``: ``lr`` throughout.

    Example:
        >>> import torch
        >>> from prl_tune.schedulers import build_scheduler
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0)
        >>> scheduler = build_scheduler(
        ...     "multistep", optimizer, epochs=4, steps_per_epoch=10, lr=0.1
        ... )
        >>> optimizer.param_groups[0]["lr"]
        0.1

    Args:
        name: One of :data:`SCHEDULER_NAMES`.
        optimizer: The optimizer to schedule.
        epochs: Number of training epochs; an int >= 1.
        steps_per_epoch: Optimizer steps per epoch; an int >= 1.
        **params: The scheduler's params: those in :data:`SCHEDULER_PARAMS` are required, those
            in :data:`SCHEDULER_DEFAULTS` optional.

    Returns:
        The scheduler, already at step 0 (its first LR is set in the optimizer).

    Raises:
        TypeError: A param is unknown, missing or has the wrong type.
        ValueError: ``name`` is unknown or a param has a wrong value.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str but got {_type_name(name)} {name!r}.")
    if name not in SCHEDULER_NAMES:
        raise ValueError(f"name must be one of {SCHEDULER_NAMES} but got {name!r}.")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer but got {_type_name(optimizer)}."
        )
    n_epochs = _positive_int("epochs", epochs)
    n_steps = _positive_int("steps_per_epoch", steps_per_epoch)
    total = n_epochs * n_steps
    p = _check_params(name, params)

    if name == "plrs":
        return PLRS(
            optimizer, p["lr_min"], p["lr_max"], seed=p["seed"], warmup_steps=p["warmup_steps"]
        )

    lr = _positive_real("lr", p["lr"])
    if name == "cosine":
        period = _positive_int("T_0", p["T_0"]) * n_steps
        t_mult = _positive_int("T_mult", p["T_mult"])
        eta_min = _fraction("eta_min", p["eta_min"], 0.0, lr)
        _set_peak_lr(optimizer, lr)
        return CosineAnnealingWarmRestarts(optimizer, T_0=period, T_mult=t_mult, eta_min=eta_min)
    if name == "onecycle":
        pct_start = _fraction("pct_start", p["pct_start"], 0.0, 0.5)
        if not (pct_start < 0.5 and pct_start * total > 1.0):
            raise ValueError(
                f"pct_start must be < 0.5 and pct_start * total_steps ({total}) must be > 1 "
                f"for a three-phase cycle but got {pct_start}."
            )
        div_factor = _positive_real("div_factor", p["div_factor"])
        final_div_factor = _positive_real("final_div_factor", p["final_div_factor"])
        _set_peak_lr(optimizer, lr)
        return OneCycleLR(
            optimizer,
            max_lr=lr,
            total_steps=total,
            pct_start=pct_start,
            anneal_strategy="linear",
            cycle_momentum=False,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            three_phase=True,
        )
    if name == "knee":
        explore_fraction = _fraction("explore_fraction", p["explore_fraction"], 0.0, 1.0)
        final_lr = _fraction("final_lr", p["final_lr"], 0.0, lr)
        _set_peak_lr(optimizer, lr)
        return KneeLR(
            optimizer,
            total_steps=total,
            explore_steps=round(explore_fraction * total),
            final_lr=final_lr,
        )
    if name == "multistep":
        milestones = _milestone_steps(p["milestones"], total)
        gamma = _fraction("gamma", p["gamma"], 0.0, 1.0)
        _set_peak_lr(optimizer, lr)
        return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    # "constant"
    _set_peak_lr(optimizer, lr)
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


def _milestone_steps(milestones: object, total: int) -> list[int]:
    """Convert strictly increasing fractions in (0, 1) of training to step indices."""
    if not isinstance(milestones, (list, tuple)):
        raise TypeError(
            "milestones must be a sequence of fractions of training "
            f"but got {_type_name(milestones)} {milestones!r}."
        )
    fractions = [_real(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
    ordered = all(a < b for a, b in itertools.pairwise(fractions))
    if not (ordered and all(0.0 < f < 1.0 for f in fractions)):
        raise ValueError(
            "milestones must be strictly increasing fractions in (0, 1) of training "
            f"but got {list(milestones)!r}."
        )
    return [round(f * total) for f in fractions]
