"""The knee schedule: explore at the peak LR, then decay linearly (Iyer et al., 2023)."""

from __future__ import annotations

import math
import numbers

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from prl_tune._checks import integer


class KneeLR(LRScheduler):
    """Knee schedule: the peak LR for ``explore_steps`` steps, then a linear decay to ``final_lr``.

    The peak of each param group is its ``initial_lr`` (set by the base class to the group's
    ``lr`` when the scheduler is built, unless an earlier scheduler set it). For
    step ``t`` (``t = 0`` at construction, ``E = explore_steps``, ``T = total_steps``)::

        lr(t) = peak                                          for t < E
        lr(t) = peak + (final_lr - peak) * (t - E) / (T - E)  for E <= t < T
        lr(t) = final_lr                                      for t >= T

    The LR is computed in closed form from ``last_epoch``, so the schedule does not drift and
    :meth:`state_dict` round-trips through the base class. From "Wide-minima density hypothesis
    and the explore-exploit learning rate schedule" (Iyer et al., JMLR 2023).

    Example:
        >>> import torch
        >>> from prl_tune.schedulers import KneeLR
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1)
        >>> scheduler = KneeLR(optimizer, total_steps=4, explore_steps=2)
        >>> lrs = [scheduler.get_last_lr()[0]]
        >>> for _ in range(4):
        ...     optimizer.step()
        ...     scheduler.step()
        ...     lrs.append(scheduler.get_last_lr()[0])
        >>> [round(lr, 6) for lr in lrs]
        [0.1, 0.1, 0.1, 0.05, 0.0]

    Args:
        optimizer: The wrapped optimizer; each group's ``initial_lr`` (else ``lr``) is its peak.
        total_steps: Step at which the LR reaches ``final_lr``; an int >= 1.
        explore_steps: Number of steps at the peak LR; an int in ``[0, total_steps]``.
        final_lr: LR at and after ``total_steps``; finite, ``>= 0`` and at most every group's
            peak. Default ``0.0``.
        last_epoch: Index of the last step, as in
            :class:`~torch.optim.lr_scheduler.LRScheduler`. Default ``-1`` (a new schedule).

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument has a wrong value.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int,
        explore_steps: int,
        final_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer but got {type(optimizer).__name__}."
            )
        total = integer("total_steps", total_steps, minimum=1)
        explore = integer("explore_steps", explore_steps, minimum=0)
        if explore > total:
            raise ValueError(
                f"explore_steps must be <= total_steps ({total}) but got {explore_steps}."
            )
        if isinstance(final_lr, bool) or not isinstance(final_lr, numbers.Real):
            raise TypeError(
                f"final_lr must be a float but got {type(final_lr).__name__} {final_lr!r}."
            )
        final = float(final_lr)
        peaks = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
        if not (math.isfinite(final) and 0.0 <= final <= min(peaks)):
            raise ValueError(
                f"final_lr must be finite, >= 0 and <= every group's peak lr ({min(peaks)}) "
                f"but got {final_lr}."
            )
        self.total_steps: int = total
        self.explore_steps: int = explore
        self.final_lr: float = final
        super().__init__(optimizer, last_epoch)

    def _lr_at(self, peak: float | torch.Tensor, step: int) -> float:
        """Closed-form LR of a group with peak ``peak`` at step ``step``."""
        peak_value = float(peak)
        if step < self.explore_steps:
            return peak_value
        if step >= self.total_steps:
            return self.final_lr
        fraction = (step - self.explore_steps) / (self.total_steps - self.explore_steps)
        return peak_value + (self.final_lr - peak_value) * fraction

    def get_lr(self) -> list[float | torch.Tensor]:
        """Return the LR of every param group at step ``last_epoch``."""
        return [self._lr_at(peak, self.last_epoch) for peak in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        """Return the LR of every param group at step ``last_epoch`` (closed form)."""
        return self.get_lr()
