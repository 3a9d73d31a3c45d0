"""A search space whose ``lr_max`` range is still to come from the LR range test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prl_tune._checks import real
from prl_tune.space._plrs_space import (
    DEFAULT_BETA_SHAPE,
    PAPER_DISTRIBUTION,
    PAPER_DRAW_EVERY,
    PLRSSpace,
)
from prl_tune.space._scheduler_space import SchedulerSpace


@dataclass(frozen=True)
class PendingRangeTest:
    """Everything of a :class:`SchedulerSpace` but its ``lr_max`` range, which the LR range test
    will give: ``[suggested / span, suggested]``.

    The constructor checks every rule that does not need ``lr_max``; :meth:`resolve` builds the
    concrete space, whose constructor checks the rest (``lr_max`` against an ``lr_min`` range).

    Args:
        span: How far below the suggested ``lr_max`` the search reaches, ``>= 1`` (default 3).
        schedulers: As :class:`SchedulerSpace`.
        lr: As :class:`SchedulerSpace`.
        lr_min_ratio: As :class:`PLRSSpace` (``None``: the default ``(0, 1)``).
        lr_min: As :class:`PLRSSpace`.
        draw_every: As :class:`PLRSSpace`.
        distribution: As :class:`PLRSSpace`.
        beta_shape: As :class:`PLRSSpace`.
    """

    span: float = 3.0
    schedulers: Sequence[str] = ("plrs",)
    lr: tuple[float, float] | float = (1e-3, 1.0)
    lr_min_ratio: tuple[float, float] | float | None = None
    lr_min: tuple[float, float] | float | None = None
    draw_every: str | int | Sequence[str | int] = PAPER_DRAW_EVERY
    distribution: str | Sequence[str] = PAPER_DISTRIBUTION
    beta_shape: float = DEFAULT_BETA_SHAPE

    def __post_init__(self) -> None:
        object.__setattr__(self, "span", self.check_span(self.span))
        schedulers, lr = SchedulerSpace.check_choices(self.schedulers, self.lr)
        object.__setattr__(self, "schedulers", schedulers)
        object.__setattr__(self, "lr", lr)
        ratio, lr_min = PLRSSpace.check_lower_bound(self.lr_min_ratio, self.lr_min)
        object.__setattr__(self, "lr_min_ratio", ratio)
        object.__setattr__(self, "lr_min", lr_min)
        every, distribution, shape = PLRSSpace.check_draw(
            self.draw_every, self.distribution, self.beta_shape
        )
        object.__setattr__(self, "draw_every", every)
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "beta_shape", shape)
        # How the PLRS choices fit the schedulers needs no lr_max: check it now, on the space
        # with a stand-in lr_max (any value that every lr_min range admits).
        stand_in = 1.0 if lr_min is None else max(1.0, lr_min[0])
        self.resolve((stand_in, stand_in))

    @staticmethod
    def check_span(span: Any) -> float:
        """The checked span (``range_test_span`` in a study file): a number ``>= 1``."""
        return float(real("range_test_span", span, low=1.0))

    def resolve(self, lr_max: tuple[float, float]) -> SchedulerSpace:
        """The concrete space with this ``lr_max`` range (checked by the space's constructor)."""
        plrs = PLRSSpace(
            lr_max,
            self.lr_min_ratio,
            lr_min=self.lr_min,
            draw_every=self.draw_every,
            distribution=self.distribution,
            beta_shape=self.beta_shape,
        )
        return SchedulerSpace(self.schedulers, plrs=plrs, lr=self.lr)
