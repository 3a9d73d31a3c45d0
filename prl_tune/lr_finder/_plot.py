"""Drawing a range test's loss curve (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from prl_tune._imports import import_optional
from prl_tune.lr_finder._rules import LR_MAX_DIVISOR, LR_MIN_RATIO

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_SMOOTHED = "#1f77b4"
_RAW = "#9aa5b1"
_BAND = "#2ca02c"
_DIVERGED = "#d62728"
_REFERENCE = "#7f7f7f"


class RangeCurve(Protocol):
    """What the plot reads of a range test's result (``RangeTestResult`` has all of it)."""

    @property
    def lrs(self) -> list[float]: ...
    @property
    def losses(self) -> list[float]: ...
    @property
    def raw_losses(self) -> list[float]: ...
    @property
    def diverged_lr(self) -> float | None: ...
    @property
    def suggested_lr_max(self) -> float: ...
    @property
    def suggested_lr_min(self) -> float: ...
    @property
    def steepest_lr(self) -> float: ...
    @property
    def min_loss_lr(self) -> float: ...


def plot_range_test(result: RangeCurve, path: str | Path) -> Path:
    """Write ``result``'s loss-versus-LR curve to ``path`` as a PNG (see ``RangeTestResult.plot``).

    The figure is drawn on matplotlib's ``Agg`` canvas without pyplot, so no global state or
    backend setting is touched. The y axis covers the smoothed loss before the divergence step;
    a divergence point above it is marked at the top edge.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: ``result`` holds no step.
    """
    import_optional("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not result.lrs:
        raise ValueError("result must hold at least one step to plot but has none.")
    target = Path(path)
    bottom, top = _y_limits(result)
    fig = Figure(figsize=(9.0, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.plot(result.lrs, result.raw_losses, color=_RAW, lw=0.8, alpha=0.7, label="raw loss")
    ax.plot(result.lrs, result.losses, color=_SMOOTHED, lw=2.0, label="smoothed loss")
    _draw_band(ax, result)
    _draw_markers(ax, result, top)
    _finish_axes(ax, result, bottom, top)
    fig.savefig(target, format="png")
    return target


def _kept(result: RangeCurve) -> int:
    """The number of steps before the divergence step (at least one)."""
    lrs = result.lrs
    stop = len(lrs) - 1 if result.diverged_lr is not None else len(lrs)
    return max(stop, 1)


def _min_index(result: RangeCurve) -> int:
    """The step of ``min_loss_lr``; the last kept step if that LR is not on the curve."""
    if result.min_loss_lr in result.lrs:
        return result.lrs.index(result.min_loss_lr)
    return _kept(result) - 1


def _y_limits(result: RangeCurve) -> tuple[float, float]:
    """``(bottom, top)`` of the y axis.

    The axis covers the curve up to its minimum (where the suggestions are read), 90% of the
    smoothed losses before the divergence step and the raw losses below them; the final rise
    may leave the chart at the top.
    """
    kept = _kept(result)
    losses = result.losses
    head = [v for v in losses[: _min_index(result) + 1] if math.isfinite(v)]
    before = sorted(v for v in losses[:kept] if math.isfinite(v)) or [0.0, 1.0]
    raw = [v for v in result.raw_losses[:kept] if math.isfinite(v)]
    high = max([*head, before[int(0.9 * (len(before) - 1))]])
    low = min(before + raw)
    pad = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
    return low - pad, high + 2.5 * pad


def _draw_band(ax: Axes, result: RangeCurve) -> None:
    """Shade the suggested ``[lr_min, lr_max]`` band and mark both ends."""
    lr_max, lr_min = result.suggested_lr_max, result.suggested_lr_min
    ax.axvspan(lr_min, lr_max, color=_BAND, alpha=0.15, label="suggested PLRS band")
    ax.axvline(
        lr_max,
        color=_BAND,
        lw=1.6,
        label=f"suggested lr_max = {lr_max:.3g} (min-loss LR / {LR_MAX_DIVISOR:g})",
    )
    ax.axvline(
        lr_min,
        color=_BAND,
        lw=1.2,
        ls="--",
        label=f"suggested lr_min = {lr_min:.3g} ({LR_MIN_RATIO:g} x lr_max)",
    )


def _draw_markers(ax: Axes, result: RangeCurve, top: float) -> None:
    """Mark the minimum, the steepest descent and the divergence point (those on the curve)."""
    lrs, losses = result.lrs, result.losses
    if result.min_loss_lr in lrs:
        ax.plot(
            result.min_loss_lr,
            losses[_min_index(result)],
            "o",
            color=_SMOOTHED,
            ms=7,
            mfc="white",
            mew=1.8,
            label=f"min smoothed loss at {result.min_loss_lr:.3g}",
        )
    if result.steepest_lr in lrs:
        ax.plot(
            result.steepest_lr,
            losses[lrs.index(result.steepest_lr)],
            "v",
            color=_REFERENCE,
            ms=7,
            label=f"steepest descent at {result.steepest_lr:.3g}",
        )
    if result.diverged_lr is not None:
        _draw_divergence(ax, result.diverged_lr, losses[-1], top)


def _draw_divergence(ax: Axes, diverged_lr: float, last: float, top: float) -> None:
    """Mark the divergence point, at the top edge if its loss is off the chart."""
    clipped = not math.isfinite(last) or last > top
    ax.plot(
        diverged_lr,
        top if clipped else last,
        "X",
        color=_DIVERGED,
        ms=10,
        clip_on=False,
        zorder=5,
        label=f"stopped: diverged at {diverged_lr:.3g}" + (" (off the chart)" if clipped else ""),
    )


def _finish_axes(ax: Axes, result: RangeCurve, bottom: float, top: float) -> None:
    """Set the axis limits, labels, title, grid and legend."""
    lrs = result.lrs
    ax.set_ylim(bottom, top)
    left = min(lrs[0], result.suggested_lr_min, result.suggested_lr_max)
    ax.set_xlim(left / 1.3, max(lrs[-1], left * 2.0) * 1.05)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(
        f"LR range test: lr_max = {result.suggested_lr_max:.3g}, "
        f"lr_min = {result.suggested_lr_min:.3g}"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
