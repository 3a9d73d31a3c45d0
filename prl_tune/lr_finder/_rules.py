"""The rules that read the suggested learning rates off a range test's loss curve."""

from __future__ import annotations

import math

#: ``suggested_lr_max = max(min_loss_lr / LR_MAX_DIVISOR, lrs[0])``.
LR_MAX_DIVISOR = 4.0
#: ``suggested_lr_min = LR_MIN_RATIO * suggested_lr_max``.
LR_MIN_RATIO = 0.7
#: Points skipped at the start and end of the curve for the steepest-descent LR, as
#: pytorch-lr-finder and Lightning do (noisy start, exploding end).
STEEPEST_SKIP_START = 10
STEEPEST_SKIP_END = 5


def suggest(lrs: list[float], losses: list[float]) -> tuple[float, float, float, float]:
    """``(suggested_lr_max, suggested_lr_min, steepest_lr, min_loss_lr)`` for a loss curve.

    ``min_loss_lr`` is the LR at the lowest smoothed loss, ``suggested_lr_max`` is
    ``max(min_loss_lr / LR_MAX_DIVISOR, lrs[0])`` and ``suggested_lr_min`` is
    ``LR_MIN_RATIO * suggested_lr_max``; ``steepest_lr`` is the LR of the steepest descent
    (see :func:`steepest_index`). Only the leading finite part of ``losses`` is used; if the
    first loss is not finite, the first step alone is. ``lrs`` and ``losses`` must have the
    same length, at least one.
    """
    count = max(finite_prefix(losses), 1)
    lrs, losses = lrs[:count], losses[:count]
    min_index = min(range(count), key=losses.__getitem__)
    min_loss_lr = lrs[min_index]
    steepest_lr = lrs[steepest_index(losses)]
    lr_max = max(min_loss_lr / LR_MAX_DIVISOR, lrs[0])
    return lr_max, LR_MIN_RATIO * lr_max, steepest_lr, min_loss_lr


def finite_prefix(losses: list[float]) -> int:
    """The number of leading finite values."""
    for index, value in enumerate(losses):
        if not math.isfinite(value):
            return index
    return len(losses)


def steepest_index(losses: list[float]) -> int:
    """Index of the most negative per-step slope (central differences), as pytorch-lr-finder.

    The first ``STEEPEST_SKIP_START`` and last ``STEEPEST_SKIP_END`` points are skipped when
    at least three points remain; otherwise the whole curve is used. A curve of fewer than
    two points gives 0.
    """
    count = len(losses)
    if count < 2:
        return 0
    low, high = STEEPEST_SKIP_START, count - STEEPEST_SKIP_END
    if high - low < 3:
        low, high = 0, count
    part = losses[low:high]
    last = len(part) - 1
    slopes = []
    for i in range(len(part)):
        if i == 0:
            slopes.append(part[1] - part[0])
        elif i == last:
            slopes.append(part[last] - part[last - 1])
        else:
            slopes.append((part[i + 1] - part[i - 1]) / 2.0)
    return low + min(range(len(slopes)), key=slopes.__getitem__)
