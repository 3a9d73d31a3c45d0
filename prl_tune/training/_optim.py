"""The optimizers a training run can use (the scheduler sets their learning rate)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

import prl_tune._checks as _checks

if TYPE_CHECKING:
    from torch.optim.optimizer import ParamsT


def _sgd(params: ParamsT, lr: float, config: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


def _adamw(params: ParamsT, lr: float, config: OptimizerConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params,
        lr=lr,
        betas=config.betas or (0.9, 0.999),
        eps=1e-8 if config.eps is None else config.eps,
        weight_decay=config.weight_decay,
    )


#: Every optimizer by name: its builder and the options only it takes.
OPTIMIZERS: Mapping[str, tuple[Callable[..., torch.optim.Optimizer], tuple[str, ...]]] = (
    MappingProxyType({"sgd": (_sgd, ("momentum", "nesterov")), "adamw": (_adamw, ("betas", "eps"))})
)
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)
"""Names accepted by :func:`build_optimizer` (a view of :data:`OPTIMIZERS`)."""

_DEFAULTS = {"momentum": 0.0, "nesterov": False, "betas": None, "eps": None}


@dataclass(frozen=True)
class OptimizerConfig:
    """An optimizer and its settings, checked once here; :meth:`build` makes the optimizer.

    Example:
        >>> config = OptimizerConfig("sgd", momentum=0.9, nesterov=True)
        >>> opt = config.build(torch.nn.Linear(4, 2).parameters())

    Args:
        name: One of :data:`OPTIMIZER_NAMES`: ``"sgd"`` (default; plain, or with ``momentum``) or
            ``"adamw"``.
        momentum: SGD momentum in ``[0, 1)`` (default 0.0); SGD only.
        nesterov: Nesterov momentum (default False); SGD only, needs ``momentum > 0``.
        weight_decay: L2 penalty for SGD, decoupled decay for AdamW; ``>= 0`` (default 0.0).
        betas: AdamW's ``(beta1, beta2)``, each in ``[0, 1)``; AdamW only. ``None`` (default)
            means ``(0.9, 0.999)``.
        eps: AdamW's denominator term, ``> 0``; AdamW only. ``None`` (default) means ``1e-8``.
        grad_clip: Clip the global gradient norm to this value before each step, ``> 0``;
            ``None`` (default) does not clip. The training loop applies it.

    Raises:
        ValueError: An unknown ``name``, a value out of range, or an option the optimizer
            does not have.
        TypeError: A value of the wrong type.
    """

    name: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] | None = None
    eps: float | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        _checks.choice("name", self.name, OPTIMIZER_NAMES)
        momentum = _checks.real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        object.__setattr__(self, "momentum", momentum)
        _checks.flag("nesterov", self.nesterov)
        object.__setattr__(
            self, "weight_decay", _checks.real("weight_decay", self.weight_decay, low=0.0)
        )
        object.__setattr__(self, "betas", _betas(self.betas))
        object.__setattr__(
            self, "eps", _checks.real("eps", self.eps, low=0.0, low_open=True, optional=True)
        )
        grad_clip = _checks.real("grad_clip", self.grad_clip, low=0.0, low_open=True, optional=True)
        object.__setattr__(self, "grad_clip", grad_clip)
        own = OPTIMIZERS[self.name][1]
        for option, default in _DEFAULTS.items():
            value = getattr(self, option)
            if option not in own and value != default:
                owner = next(name for name, (_, keys) in OPTIMIZERS.items() if option in keys)
                raise _checks.ArgumentValueError(
                    option,
                    f"applies to {owner!r} only but got {option}={value} for {self.name!r}.",
                )
        if self.nesterov and self.momentum == 0.0:
            raise _checks.ArgumentValueError(
                "nesterov", f"needs momentum > 0 but got momentum={self.momentum}."
            )

    def build(self, params: ParamsT, lr: float = 0.1) -> torch.optim.Optimizer:
        """The optimizer over ``params`` with initial learning rate ``lr`` (``>= 0``).

        A scheduler built on the optimizer overwrites ``lr``, so it is only a placeholder there.
        """
        checked = _checks.real("lr", lr, low=0.0)
        return OPTIMIZERS[self.name][0](params, checked, self)


def _betas(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2):
        raise _checks.ArgumentValueError(
            "betas", f"must be two numbers in [0, 1) but got {value!r}."
        )
    b1, b2 = (_checks.real("betas", v, low=0.0, high=1.0, high_open=True) for v in value)
    return (b1, b2)


def build_optimizer(
    params: ParamsT,
    name: str | OptimizerConfig = "sgd",
    *,
    lr: float = 0.1,
    **options: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer by name (or from an :class:`OptimizerConfig`), checking its options.

    Example:
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = build_optimizer(model.parameters(), "sgd", momentum=0.9, nesterov=True)

    Args:
        params: The parameters (or parameter groups) to optimize.
        name: One of :data:`OPTIMIZER_NAMES`, or a whole :class:`OptimizerConfig` (then no
            ``options``).
        lr: The initial learning rate (default 0.1), ``>= 0``. A scheduler built on the
            optimizer overwrites it, so it is only a placeholder there.
        options: The fields of :class:`OptimizerConfig` but ``name`` (``momentum``,
            ``nesterov``, ``weight_decay``, ``betas``, ``eps``).

    Raises:
        ValueError: An unknown ``name``, a value out of range, or an option the optimizer
            does not have.
    """
    if isinstance(name, OptimizerConfig):
        if options:
            raise _checks.ArgumentTypeError(
                "options", f"must be empty with an OptimizerConfig but got {sorted(options)}."
            )
        return name.build(params, lr)
    return OptimizerConfig(name, **options).build(params, lr)
