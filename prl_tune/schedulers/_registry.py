"""The scheduler registry: PLRS and the baselines compared in arXiv 2407.07613, by name.

One table (:data:`SCHEDULERS`) says, for every scheduler, the parameters it needs, its optional
parameters with their defaults, and a small builder. The factory, the name lists, the study-file
check and ``SchedulerSpace`` all read it. It also holds named variants of PLRS (``plrs-epoch``,
``plrs-beta``, ...): PLRS with one of its two hidden choices fixed, so ``prl-tune compare`` can
compare them side by side with the paper's PLRS under one protocol.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import prl_tune._checks as _checks
from prl_tune.schedulers._lr import set_lr

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler


@dataclass(frozen=True)
class _Budget:
    """The length of training in optimizer steps."""

    steps_per_epoch: int
    total: int


Builder = Callable[["Optimizer", _Budget, dict[str, Any]], "LRScheduler"]


@dataclass(frozen=True)
class SchedulerEntry:
    """One registered scheduler.

    Args:
        name: The registry key.
        required: The params the scheduler needs: ``("lr_min", "lr_max")`` for a band of LRs
            (searched by ``PLRSSpace``), ``("lr",)`` for a peak LR.
        defaults: The optional params with their defaults.
        build: ``build(optimizer, budget, params)`` with the defaults merged into ``params``.
        variant_of: For a variant, the scheduler it is a variant of (``"plrs"``); ``None`` for
            a scheduler of its own.
        fixed: The params a variant fixes; a caller may not set them.
    """

    name: str
    required: tuple[str, ...]
    build: Builder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    variant_of: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def searches_bounds(self) -> bool:
        """Whether the scheduler takes ``lr_min``/``lr_max`` rather than a peak ``lr``."""
        return self.required == ("lr_min", "lr_max")


def _peak_lr(params: Mapping[str, Any]) -> float:
    """The peak ``lr`` of a baseline, checked."""
    return float(_checks.real("lr", params["lr"], low=0.0, low_open=True))


#: The words ``draw_every`` takes besides a number of steps: a draw at every step (the paper),
#: or once per epoch.
DRAW_EVERY_WORDS = ("step", "epoch")


def check_draw_every(name: str, value: Any) -> str | int:
    """``value`` as a PLRS draw frequency: ``"step"`` (also for ``1``), ``"epoch"`` or an int
    ``k >= 2`` (a draw every ``k`` steps)."""
    rule = f"must be 'step', 'epoch' or an integer >= 1 (steps) but got {value!r}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _checks.ArgumentTypeError(name, f"{rule} ({type(value).__name__}).")
    if value in DRAW_EVERY_WORDS:
        return value
    if isinstance(value, int) and value >= 1:
        return "step" if value == 1 else value
    raise _checks.ArgumentValueError(name, f"{rule}.")


def _build_plrs(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from prl_tune.schedulers._plrs import PLRS

    every = check_draw_every("draw_every", p["draw_every"])
    if isinstance(every, str):
        every = budget.steps_per_epoch if every == "epoch" else 1
    return PLRS(
        optimizer,
        p["lr_min"],
        p["lr_max"],
        seed=p["seed"],
        warmup_steps=p["warmup_steps"],
        draw_every=every,
        distribution=p["distribution"],
        beta_shape=p["beta_shape"],
    )


def _build_cosine(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

    period = _checks.integer("T_0", p["T_0"], minimum=1) * budget.steps_per_epoch
    t_mult = _checks.integer("T_mult", p["T_mult"], minimum=1)
    lr = _peak_lr(p)
    eta_min = _checks.real("eta_min", p["eta_min"], low=0.0, high=lr)
    set_lr(optimizer, lr, initial=True)
    return CosineAnnealingWarmRestarts(optimizer, T_0=period, T_mult=t_mult, eta_min=eta_min)


def _build_onecycle(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from torch.optim.lr_scheduler import OneCycleLR

    pct_start = _checks.real("pct_start", p["pct_start"], low=0.0, high=0.5, high_open=True)
    if not pct_start * budget.total > 1.0:
        raise _checks.ArgumentValueError(
            "pct_start",
            f"times total_steps ({budget.total}) must be > 1 for a three-phase cycle but got "
            f"{pct_start}.",
        )
    div_factor = _checks.real("div_factor", p["div_factor"], low=0.0, low_open=True)
    final_div = _checks.real("final_div_factor", p["final_div_factor"], low=0.0, low_open=True)
    lr = _peak_lr(p)
    set_lr(optimizer, lr, initial=True)
    return OneCycleLR(
        optimizer,
        max_lr=lr,
        total_steps=budget.total,
        pct_start=pct_start,
        anneal_strategy="linear",
        cycle_momentum=False,
        div_factor=div_factor,
        final_div_factor=final_div,
        three_phase=True,
    )


def _build_knee(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from prl_tune.schedulers._knee import KneeLR

    explore = _checks.real("explore_fraction", p["explore_fraction"], low=0.0, high=1.0)
    lr = _peak_lr(p)
    final_lr = _checks.real("final_lr", p["final_lr"], low=0.0, high=lr)
    set_lr(optimizer, lr, initial=True)
    return KneeLR(
        optimizer,
        total_steps=budget.total,
        explore_steps=round(explore * budget.total),
        final_lr=final_lr,
    )


def _build_multistep(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from torch.optim.lr_scheduler import MultiStepLR

    milestones = _milestone_steps(p["milestones"], budget.total)
    gamma = _checks.real("gamma", p["gamma"], low=0.0, high=1.0)
    set_lr(optimizer, _peak_lr(p), initial=True)
    return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)


def _build_constant(optimizer: Optimizer, budget: _Budget, p: dict[str, Any]) -> LRScheduler:
    from torch.optim.lr_scheduler import ConstantLR

    set_lr(optimizer, _peak_lr(p), initial=True)
    return ConstantLR(optimizer, factor=1.0, total_iters=0)


def _milestone_steps(milestones: object, total: int) -> list[int]:
    """Convert strictly increasing fractions in (0, 1) of training to step indices."""
    if not isinstance(milestones, list | tuple):
        raise _checks.ArgumentTypeError(
            "milestones",
            f"must be a sequence of fractions of training but got {milestones!r} "
            f"({type(milestones).__name__}).",
        )
    fractions = [_checks.real(f"milestones[{i}]", m) for i, m in enumerate(milestones)]
    ordered = all(a < b for a, b in itertools.pairwise(fractions))
    if not (ordered and all(0.0 < f < 1.0 for f in fractions)):
        raise _checks.ArgumentValueError(
            "milestones",
            f"must be strictly increasing fractions in (0, 1) of training but got "
            f"{list(milestones)!r}.",
        )
    return [round(f * total) for f in fractions]


_BOUNDS = ("lr_min", "lr_max")
_PLRS_DEFAULTS: Mapping[str, Any] = {
    "seed": None,
    "warmup_steps": 0,
    "draw_every": "step",
    "distribution": "uniform",
    "beta_shape": 2.0,
}


def _plrs_variant(name: str, **fixed: Any) -> SchedulerEntry:
    """PLRS with ``fixed`` params: the same bounds to search, one hidden choice set apart."""
    defaults = {k: v for k, v in _PLRS_DEFAULTS.items() if k not in fixed}
    return SchedulerEntry(name, _BOUNDS, _build_plrs, defaults, variant_of="plrs", fixed=fixed)


SCHEDULERS: Mapping[str, SchedulerEntry] = MappingProxyType(
    {
        entry.name: entry
        for entry in (
            SchedulerEntry("plrs", _BOUNDS, _build_plrs, _PLRS_DEFAULTS),
            SchedulerEntry(
                "cosine", ("lr",), _build_cosine, {"T_0": 1, "T_mult": 2, "eta_min": 1e-4}
            ),
            SchedulerEntry(
                "onecycle",
                ("lr",),
                _build_onecycle,
                {"pct_start": 0.45, "div_factor": 10.0, "final_div_factor": 10.0},
            ),
            SchedulerEntry(
                "knee", ("lr",), _build_knee, {"explore_fraction": 0.5, "final_lr": 0.0}
            ),
            SchedulerEntry(
                "multistep", ("lr",), _build_multistep, {"milestones": (0.5, 0.75), "gamma": 0.1}
            ),
            SchedulerEntry("constant", ("lr",), _build_constant),
            _plrs_variant("plrs-epoch", draw_every="epoch"),
            _plrs_variant("plrs-every8", draw_every=8),
            _plrs_variant("plrs-loguniform", distribution="log-uniform"),
            _plrs_variant("plrs-beta", distribution="beta"),
        )
    }
)
"""Every scheduler :func:`build_scheduler` can build, by name (defaults after Appendix F), and
the named variants of PLRS."""

SCHEDULER_NAMES: tuple[str, ...] = tuple(SCHEDULERS)
"""Names accepted by :func:`build_scheduler` (the PLRS variants included)."""

PLRS_VARIANTS: tuple[str, ...] = tuple(n for n, e in SCHEDULERS.items() if e.variant_of == "plrs")
"""The named variants of PLRS: ``plrs-epoch``, ``plrs-every8``, ``plrs-loguniform``,
``plrs-beta``."""

SCHEDULER_PARAMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {name: entry.required for name, entry in SCHEDULERS.items()}
)
"""Required params of each scheduler (a view of :data:`SCHEDULERS`)."""

SCHEDULER_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {name: entry.defaults for name, entry in SCHEDULERS.items()}
)
"""Optional params of each scheduler with their defaults (a view of :data:`SCHEDULERS`)."""


def _merged_params(entry: SchedulerEntry, params: Mapping[str, Any]) -> dict[str, Any]:
    """Reject unknown, fixed or missing params; return the params merged with the defaults and
    the variant's fixed params."""
    fixed = sorted(set(params) & set(entry.fixed))
    if fixed:
        shown = ", ".join(f"{key}={entry.fixed[key]!r}" for key in fixed)
        raise _checks.ArgumentTypeError(
            "params",
            f"of {entry.name!r} must not set {fixed} (the variant fixes {shown}; use "
            f"{entry.variant_of!r} to choose it) but got {[params[key] for key in fixed]!r}.",
        )
    unknown = sorted(set(params) - set(entry.required) - set(entry.defaults))
    if unknown:
        allowed = ", ".join([*entry.required, *entry.defaults])
        raise _checks.ArgumentTypeError(
            "params", f"of {entry.name!r} must be among {allowed} but got unknown {unknown}."
        )
    missing = [key for key in entry.required if key not in params]
    if missing:
        raise _checks.ArgumentTypeError(
            "params", f"of {entry.name!r} must include {missing} but they are missing."
        )
    return {**entry.defaults, **params, **entry.fixed}


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

    - ``plrs``: :class:`PLRS` with ``lr_min``, ``lr_max``, ``seed=None``, ``warmup_steps=0``,
      ``draw_every="step"`` (a draw at every step; ``"epoch"``: once per epoch, i.e. every
      ``steps_per_epoch`` steps; an int ``k``: every ``k`` steps), ``distribution="uniform"``
      (or ``"log-uniform"``, ``"beta"``) and ``beta_shape=2.0`` (``a`` of ``Beta(a, a)``).
    - ``plrs-epoch``, ``plrs-every8``, ``plrs-loguniform``, ``plrs-beta``: PLRS with
      ``draw_every="epoch"``, ``draw_every=8``, ``distribution="log-uniform"`` or
      ``distribution="beta"`` fixed (:data:`PLRS_VARIANTS`); the same params otherwise.
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
        The scheduler, already at step 0 (its first LR is set in the optimizer). Every argument
        is checked before the optimizer is touched.

    Raises:
        TypeError: A param is unknown, missing or has the wrong type.
        ValueError: ``name`` is unknown or a param has a wrong value.
    """
    from torch.optim import Optimizer

    _checks.text("name", name)
    entry = SCHEDULERS[_checks.choice("name", name, SCHEDULER_NAMES)]
    if not isinstance(optimizer, Optimizer):
        raise _checks.ArgumentTypeError(
            "optimizer", f"must be a torch.optim.Optimizer but got {type(optimizer).__name__}."
        )
    n_epochs = _checks.integer("epochs", epochs, minimum=1)
    n_steps = _checks.integer("steps_per_epoch", steps_per_epoch, minimum=1)
    budget = _Budget(steps_per_epoch=n_steps, total=n_epochs * n_steps)
    return entry.build(optimizer, budget, _merged_params(entry, params))
