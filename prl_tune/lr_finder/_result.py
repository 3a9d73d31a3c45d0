"""The result of an LR range test: its loss curve and the learning rates read off it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class RangeTestResult:
    """The loss curve of an LR range test and the learning rates read off it.

    Example:
        >>> from prl_tune.lr_finder import range_test_task
        >>> from prl_tune.training import load_task
        >>> result = range_test_task(load_task("digits", model="mlp"), num_iter=50)
        >>> result.suggested_lr_min < result.suggested_lr_max
        True

    The suggestions are read off the smoothed loss, up to its last finite value (if the first
    smoothed loss is not finite, off the first step alone):

    * ``suggested_lr_max = max(min_loss_lr / 4, lrs[0])``: a quarter of the LR at which the
      smoothed loss is lowest, i.e. where it turns up, but never below the first LR of the
      sweep. The divisor is a safety margin: a long training run blows up at a lower LR than a
      short sweep does, and ``min_loss_lr`` of a single sweep varies from seed to seed. If the
      loss is still falling at ``end_lr`` the sweep missed the turn-up: raise ``end_lr``; if
      it is lowest at the first step the sweep started too high: lower ``start_lr``.
    * ``suggested_lr_min = 0.7 * suggested_lr_max``: a narrow band just below ``lr_max``.

    The measurements behind the divisor and the ratio are in ``benchmarks/README.md``.

    Args:
        lrs: The learning rate of each step, in the order applied.
        losses: The smoothed training loss after each step: an exponential moving average
            with the newest loss weighted ``smooth_f``, bias-corrected (the first value is the
            first raw loss), as in fastai and Lightning.
        raw_losses: The training loss of each step's batch, before smoothing.
        diverged_lr: The LR of the step at which the run stopped because the smoothed loss
            exceeded ``diverge_th`` times its best value or was not finite (that step is the
            last one recorded); ``None`` if the sweep reached ``end_lr``.
        suggested_lr_max: The suggested ``lr_max`` for PLRS (rule above).
        suggested_lr_min: The suggested ``lr_min`` for PLRS (rule above).
        steepest_lr: The LR of the steepest descent of the smoothed loss per step, the
            suggestion of pytorch-lr-finder and Lightning (for reference).
        min_loss_lr: The LR at the minimum of the smoothed loss.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    diverged_lr: float | None
    suggested_lr_max: float
    suggested_lr_min: float
    steepest_lr: float
    min_loss_lr: float

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-able dict: non-finite losses become ``None`` (JSON has no NaN)."""
        data = asdict(self)
        for key in ("losses", "raw_losses"):
            data[key] = [v if math.isfinite(v) else None for v in data[key]]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RangeTestResult:
        """Rebuild a result from :meth:`to_dict`'s output (``None`` losses come back as NaN).

        Raises:
            ValueError: A key is missing or unknown, or the lists are empty or differ in
                length.
        """
        names = [f.name for f in fields(cls)]
        missing = sorted(set(names) - set(data))
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise ValueError(
                f"data must have exactly the keys {names} but misses {missing} and has the "
                f"unknown keys {unknown}."
            )
        lengths = {len(data[key]) for key in ("lrs", "losses", "raw_losses")}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(
                "data['lrs'], data['losses'] and data['raw_losses'] must have one entry per "
                f"step (at least one) but have the lengths {sorted(lengths)}."
            )

        def floats(values: Iterable[float | None]) -> list[float]:
            return [math.nan if v is None else float(v) for v in values]

        diverged = data["diverged_lr"]
        return cls(
            lrs=[float(v) for v in data["lrs"]],
            losses=floats(data["losses"]),
            raw_losses=floats(data["raw_losses"]),
            diverged_lr=None if diverged is None else float(diverged),
            suggested_lr_max=float(data["suggested_lr_max"]),
            suggested_lr_min=float(data["suggested_lr_min"]),
            steepest_lr=float(data["steepest_lr"]),
            min_loss_lr=float(data["min_loss_lr"]),
        )

    def plot(self, path: str | Path) -> Path:
        """Save the loss-versus-LR curve as a PNG and return its path.

        The smoothed loss is drawn over a log LR axis with the raw losses faint behind it,
        with markers at the suggested ``lr_min`` and ``lr_max`` and at the divergence point.
        Needs matplotlib (the ``plot`` extra); uses its non-interactive ``Agg`` backend.

        Args:
            path: Where to write the PNG; parent folders must exist.

        Raises:
            ImportError: matplotlib is not installed.
            ValueError: The result holds no step.
        """
        from prl_tune.lr_finder._plot import plot_range_test

        return plot_range_test(self, path)
