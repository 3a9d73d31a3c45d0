"""Drawing a range test's loss curve (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from prl_tune._imports import import_optional

if TYPE_CHECKING:
    from prl_tune.lr_finder._range_test import RangeTestResult

_SMOOTHED = "#1f77b4"
_RAW = "#9aa5b1"
_BAND = "#2ca02c"
_DIVERGED = "#d62728"
_REFERENCE = "#7f7f7f"


def plot_range_test(result: RangeTestResult, path: str | Path) -> Path:
    """Write ``result``'s loss-versus-LR curve to ``path`` as a PNG (see ``RangeTestResult.plot``).

    The figure is drawn on matplotlib's ``Agg`` canvas without pyplot, so no global state or
    backend setting is touched. The y axis covers the smoothed loss before the divergence step;
    a divergence point above it is marked at the top edge.
    """
    import_optional("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from prl_tune.lr_finder._range_test import _LR_MAX_DIVISOR, _LR_MIN_RATIO

    if not result.lrs:
        raise ValueError("result must hold at least one step to plot but has none.")
    target = Path(path)
    lrs, losses = result.lrs, result.losses
    stop = len(lrs) - 1 if result.diverged_lr is not None else len(lrs)
    kept = max(stop, 1)
    # The y axis covers the curve up to its minimum (where the suggestions are read), 90% of
    # the smoothed losses before the stop and the raw losses below them; the final rise may
    # leave the chart at the top.
    min_index = lrs.index(result.min_loss_lr) if result.min_loss_lr in lrs else kept - 1
    head = [v for v in losses[: min_index + 1] if math.isfinite(v)]
    before = sorted(v for v in losses[:kept] if math.isfinite(v)) or [0.0, 1.0]
    raw = [v for v in result.raw_losses[:kept] if math.isfinite(v)]
    high = max([*head, before[int(0.9 * (len(before) - 1))]])
    low = min(before + raw)
    pad = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
    bottom, top = low - pad, high + 2.5 * pad

    fig = Figure(figsize=(9.0, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.plot(lrs, result.raw_losses, color=_RAW, lw=0.8, alpha=0.7, label="raw loss")
    ax.plot(lrs, losses, color=_SMOOTHED, lw=2.0, label="smoothed loss")
    ax.axvspan(
        result.suggested_lr_min,
        result.suggested_lr_max,
        color=_BAND,
        alpha=0.15,
        label="suggested PLRS band",
    )
    ax.axvline(
        result.suggested_lr_max,
        color=_BAND,
        lw=1.6,
        label=(
            f"suggested lr_max = {result.suggested_lr_max:.3g} (min-loss LR / {_LR_MAX_DIVISOR:g})"
        ),
    )
    ax.axvline(
        result.suggested_lr_min,
        color=_BAND,
        lw=1.2,
        ls="--",
        label=f"suggested lr_min = {result.suggested_lr_min:.3g} ({_LR_MIN_RATIO:g} x lr_max)",
    )
    if result.min_loss_lr in lrs:
        ax.plot(
            result.min_loss_lr,
            losses[min_index],
            "o",
            color=_SMOOTHED,
            ms=7,
            mfc="white",
            mew=1.8,
            label=f"min smoothed loss at {result.min_loss_lr:.3g}",
        )
    if result.steepest_lr in lrs:
        steep_loss = losses[lrs.index(result.steepest_lr)]
        ax.plot(
            result.steepest_lr,
            steep_loss,
            "v",
            color=_REFERENCE,
            ms=7,
            label=f"steepest descent at {result.steepest_lr:.3g}",
        )
    if result.diverged_lr is not None:
        last = losses[-1]
        clipped = not math.isfinite(last) or last > top
        y = top if clipped else last
        ax.plot(
            result.diverged_lr,
            y,
            "X",
            color=_DIVERGED,
            ms=10,
            clip_on=False,
            zorder=5,
            label=f"stopped: diverged at {result.diverged_lr:.3g}"
            + (" (off the chart)" if clipped else ""),
        )
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
    fig.savefig(target, format="png")
    return target
