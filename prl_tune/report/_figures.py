"""The report's pictures, drawn with matplotlib (Agg) into PNG bytes."""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prl_tune.report._model import StudyReport, TrialView
from prl_tune.schedulers import PLRS_VARIANTS, SCHEDULERS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# outcome -> (marker, colour, label); complete trials are coloured by the metric instead.
_MARKERS = {
    "pruned by the rules": ("x", "#d62728", "unstable (rules)"),
    "pruned by the memory": ("s", "none", "skipped (memory)"),
    "pruned by the base pruner": ("^", "#7f7f7f", "pruned (base)"),
    "failed": ("D", "#000000", "failed"),
}
_TOP_CURVES = 5
_PLRS_FAMILY = ("plrs", *PLRS_VARIANTS)  # schedulers whose trials have PLRS bounds
_UNSTABLE_CURVES = 12
_DPI = 100


def figures_available() -> bool:
    """Whether matplotlib (the ``plot`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def figures(report: StudyReport) -> dict[str, bytes]:
    """The report's figures as PNG bytes by name (``map``, ``curves``, ``draws``,
    ``range_test``); a figure with nothing to show is left out, and all are without
    matplotlib."""
    if not figures_available():
        return {}
    makers: dict[str, Callable[[StudyReport], Figure | None]] = {
        "map": _map,
        "curves": _curves,
        "draws": _draws,
    }
    found = {}
    for name, make in makers.items():
        figure = make(report)
        if figure is not None:
            found[name] = _png(figure)
    if report.range_test is not None:
        found["range_test"] = _range_test_png(report.range_test)
    return found


def _png(figure: Figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _new(width: float = 7.0, height: float = 4.5, columns: int = 1) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height))


def _map(report: StudyReport) -> Figure | None:
    """Every PLRS trial in the (lr_min, lr_max) plane, log axes, with the boundary or overlap."""
    ranged = [t for t in report.trials if t.lr_min is not None and t.lr_max is not None]
    if not ranged:
        return None
    floor = min((t.lr_min for t in ranged if t.lr_min), default=1e-6) / 3
    figure, ax = _new()
    complete = [t for t in ranged if t.outcome == "complete" and t.value is not None]
    if complete:
        points = ax.scatter(
            [max(t.lr_min, floor) for t in complete],  # type: ignore[type-var]
            [t.lr_max for t in complete],
            c=[t.value for t in complete],
            cmap="viridis",
            s=28,
            label="complete",
            zorder=3,
        )
        figure.colorbar(points, ax=ax, label=report.metric)
    for kind, (marker, colour, label) in _MARKERS.items():
        own = [t for t in ranged if t.outcome == kind]
        if own:
            ax.scatter(
                [max(t.lr_min, floor) for t in own],  # type: ignore[type-var]
                [t.lr_max for t in own],
                marker=marker,
                c=colour if colour != "none" else "none",
                edgecolors="#7f7f7f" if colour == "none" else None,
                s=30,
                label=label,
                zorder=2,
            )
    _draw_boundary(ax, report)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lr_min (log; 0 drawn at the left edge)")
    ax.set_ylabel("lr_max (log)")
    ax.set_title("Every trial's LR range")
    ax.legend(loc="lower right", fontsize=8)
    return figure


def _draw_boundary(ax: Axes, report: StudyReport) -> None:
    """Shade between the largest stable and the smallest unstable lr_max of PLRS trials (its
    named variants included: their bounds mean the same), or the band where they overlap
    (then no single lr_max separates them)."""
    plrs = [t for t in report.trials if t.scheduler in _PLRS_FAMILY and t.lr_max is not None]
    stable = [t.lr_max for t in plrs if t.lr_max is not None and t.outcome == "complete"]
    unstable = [
        t.lr_max for t in plrs if t.lr_max is not None and t.outcome == "pruned by the rules"
    ]
    if not stable or not unstable:
        return
    high, low = max(stable), min(unstable)
    if high < low:
        ax.axhspan(high, low, color="#ff7f0e", alpha=0.15, label="stability boundary")
    else:
        ax.axhspan(low, high, color="#d62728", alpha=0.08, hatch="//", label="overlap: no boundary")


def _curves(report: StudyReport) -> Figure | None:
    """The metric per epoch of the top trials, and the loss of unstable trials up to the stop."""
    top = report.top(_TOP_CURVES)
    unstable = [
        t for t in report.trials if t.outcome == "pruned by the rules" and t.attrs.get("loss_tail")
    ][:_UNSTABLE_CURVES]
    if not top and not unstable:
        return None
    figure, (left, right) = _new(11.0, 4.0, columns=2)
    for trial in top:
        steps = sorted(trial.intermediate)
        left.plot(steps, [trial.intermediate[s] for s in steps], marker=".", label=_label(trial))
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("epoch")
    left.set_ylabel(report.metric)
    left.set_title(f"Top {len(top)} trials")
    if top:
        left.legend(fontsize=7)
    for trial in unstable:
        losses = [_as_float(v) for v in trial.attrs["loss_tail"]]
        stop = int(trial.attrs.get("diverged_at_step") or len(losses))
        steps = list(range(stop - len(losses) + 1, stop + 1))
        finite = [(s, v) for s, v in zip(steps, losses, strict=True) if math.isfinite(v) and v > 0]
        if finite:
            kind = trial.attrs.get("instability", "unstable")
            label = f"#{trial.number} {kind} at step {stop}"
            line = right.plot(*zip(*finite, strict=True), label=label)[0]
            right.scatter([finite[-1][0]], [finite[-1][1]], marker="x", color=line.get_color())
    right.set_yscale("log")
    right.set_xlabel("optimizer step (x: where the rules stopped it)")
    right.set_ylabel("training loss (log)")
    right.set_title(f"Unstable trials ({len(unstable)} shown)")
    if unstable:
        right.legend(fontsize=7, ncol=2)
    return figure


def _draws(report: StudyReport) -> Figure | None:
    """A histogram of the LRs the best PLRS trial drew (replayed from its seed) against
    ``U[lr_min, lr_max]``."""
    best = _best_plrs_trial(report)
    lrs = replay_best_draws(report)
    if not lrs or best is None or best.lr_min is None or best.lr_max is None:
        return None
    figure, ax = _new(7.0, 3.5)
    ax.hist(lrs, bins=40, density=True, color="#1f77b4", alpha=0.75, label=f"{len(lrs)} draws")
    width = best.lr_max - best.lr_min
    if width > 0:
        ax.hlines(1 / width, best.lr_min, best.lr_max, colors="#d62728", label="U[lr_min, lr_max]")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("density")
    ax.set_title(f"What {best.scheduler} drew in trial {best.number}")
    ax.legend(fontsize=8)
    return figure


def _best_plrs_trial(report: StudyReport) -> TrialView | None:
    """The best trial of PLRS, or when PLRS itself has none, of the best-scoring named PLRS
    variant (``None`` when no PLRS-family trial has bounds)."""
    rows = [r for r in report.schedulers if r.scheduler in _PLRS_FAMILY and r.best_trial]
    rows.sort(key=lambda r: (r.scheduler != "plrs", -_signed(report, r.best)))
    best = rows[0].best_trial if rows else None
    if best is None or best.lr_min is None or best.lr_max is None:
        return None
    return best


def _signed(report: StudyReport, value: float | None) -> float:
    """``value`` oriented so that larger is better (``-inf`` for none)."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if report.direction == "maximize" else -value


def replay_best_draws(report: StudyReport) -> list[float]:
    """The LRs the best PLRS trial (see :func:`_best_plrs_trial`) applied, replayed from its
    seed and its PLRS choices (draw frequency, distribution) without training (``[]`` when
    there is no such trial)."""
    best = _best_plrs_trial(report)
    if best is None or best.lr_min is None or best.lr_max is None:
        return []
    steps = best.attrs.get("steps")
    seed = best.attrs.get("seed")
    history = best.attrs.get("history") or []
    if not isinstance(steps, int) or steps < 1 or not isinstance(seed, int) or not history:
        return []
    import torch

    from prl_tune.schedulers import build_scheduler

    space = (report.spec or {}).get("space", {})
    choices = {k: best.attrs.get(k) for k in ("draw_every", "distribution", "beta_shape")}
    fixed = SCHEDULERS[best.scheduler].fixed  # a variant's own choice is not passed again
    choices = {k: v for k, v in choices.items() if v is not None and k not in fixed}
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=best.lr_max)
    scheduler = build_scheduler(
        best.scheduler,
        optimizer,
        epochs=len(history),
        steps_per_epoch=max(1, int(history[0]["step"])),
        lr_min=best.lr_min,
        lr_max=best.lr_max,
        seed=seed,
        warmup_steps=int(space.get("warmup_steps", 0) or 0),
        **choices,
    )
    drawn = []
    for _ in range(steps):
        drawn.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
    return drawn


def _range_test_png(result: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="prl_tune-report-") as folder:
        path = Path(result.plot(Path(folder) / "range-test.png"))
        return path.read_bytes()


def _label(trial: TrialView) -> str:
    if trial.lr_min is not None and trial.lr_max is not None:
        return f"#{trial.number} [{trial.lr_min:.3g}, {trial.lr_max:.3g}]"
    return f"#{trial.number} {trial.scheduler} lr={trial.lr}"


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
