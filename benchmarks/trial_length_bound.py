"""How short can a trial be and still hand the user a good configuration? A lower bound for
``compute_to_target.py`` (issue 14), and what an early stop on a plateau gives.

``compute_to_target.py`` counts optimizer steps until a study's best *completed* trial is
within one point of the best any arm found. When the best plain-Optuna arm already gets there
with its first trial (``digits_mlp``: 2,880 steps = one 12-epoch trial in 3 of 5 seeds), halving
its steps needs a completed trial of at most half the epochs whose value reaches the target:
no choice of which configurations to try can do it while every trial runs all its epochs.

This script measures what shortening trials could give at best. Per seed it trains a grid of
PLRS configurations (``lr_max`` on a log grid, ``lr_min_ratio`` 0 and 0.7; SGD with momentum
0.9, as the compute benchmark) and the defaults' own first trials (the warm start's LR range
test, as a study runs it, and its two enqueued configurations; their steps count the test's)
for ``--epochs`` epochs, keeps every epoch's validation accuracy, and prints:

- per seed, the **oracle**: the fewest steps at which any configuration of the grid reaches
  ``--target``, with that configuration and epoch, and the same for the warm start's first
  trials. PLRS draws every step's LR independently of the number of epochs, so a run cut after
  ``e`` epochs is exactly the run of a trial with ``epochs = e``: the oracle is what a study
  would need if it knew the configuration and the epoch to stop at before training anything;
- per early-stopping rule (stop once the validation accuracy has not improved for ``patience``
  epochs, as Keras' ``EarlyStopping`` or Lightning's), the mean epoch it stops the grid's runs
  at, the mean accuracy that loses against the full run (last epoch against last epoch, best
  epoch against best epoch), and the seeds where a stopped run reaches the target within
  ``--max-steps`` steps (half the best plain arm's median): any run of the grid, or one of the
  warm start's first trials; valued at its last epoch (prl_tune's default ``[study] value``)
  or at its best epoch (``value = "best"``).

    python benchmarks/trial_length_bound.py --family digits_mlp --target 0.9761 --max-steps 1440
    python benchmarks/trial_length_bound.py --family F --target T --max-steps S [--seeds 5]
        [--epochs 12]

The target and the half-median come from ``compute_to_target.py``'s table for the family
(``target`` in its heading, ``median steps to target`` of its best plain arm).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compute_to_target import ARMS, DEFAULTS, FAMILIES, steps_per_epoch, study_dict
from task_families import FAMILIES as TASKS

from prl_tune.config import StudySpec, run_range_test
from prl_tune.hosts._shared import WARM_START_FACTORS, WARM_START_RATIO, warm_start_divisor
from prl_tune.training import train

#: The grid: ``lr_max`` from 1e-3 to 10^-0.5 in quarter decades, two ``lr_min`` ratios.
LR_MAX = tuple(10 ** (-3 + 0.25 * i) for i in range(11))
RATIOS = (0.0, 0.7)
PATIENCES = (2, 3, 4)


@dataclass(frozen=True)
class Curve:
    """One configuration's run: its validation accuracy after every epoch. ``setup`` is the
    range test's steps for the warm start's first trials (which come after it), else 0."""

    seed: int
    lr_max: float
    ratio: float
    accuracy: tuple[float, ...]
    steps_per_epoch: int
    setup: int = 0

    @property
    def warm(self) -> bool:
        return self.setup > 0

    def steps(self, epochs: int) -> int:
        """Steps until this run's ``epochs``-th epoch ends, the range test's included."""
        return self.setup + epochs * self.steps_per_epoch


def _run(family: str, seed: int, epochs: int, lr_max: float, ratio: float) -> tuple[float, ...]:
    task = TASKS[family](seed=seed, device=torch.device("cpu"), batch_size=FAMILIES[family])
    result = train(
        task,
        epochs=epochs,
        scheduler="plrs",
        scheduler_params={"lr_min": ratio * lr_max, "lr_max": lr_max},
        optimizer="sgd",
        optimizer_params={"momentum": 0.9},
        device="cpu",
        seed=seed,
        evaluate_test=False,
    )
    return tuple(float(m.val_accuracy) for m in result.history)


def warm_trials(family: str, seed: int, epochs: int, folder: Path) -> list[Curve]:
    """The defaults' first trials for this family and seed: the warm start's LR range test
    (as a study runs it) and its two enqueued configurations, trained ``epochs`` epochs."""
    data = study_dict(
        ARMS[DEFAULTS],
        family=family,
        seed=seed,
        trials=2,
        epochs=epochs,
        optimizer="momentum",
        folder=folder,
    )
    spec = StudySpec.from_dict(data)
    test = run_range_test(spec)
    centre = float(test.min_loss_lr) / warm_start_divisor(spec)
    low, high = spec.space.plrs.lr_max  # type: ignore[union-attr]
    steps = steps_per_epoch(family)
    curves = []
    for factor in WARM_START_FACTORS:
        lr_max = min(max(centre / factor, low), high)
        accuracy = _run(family, seed, epochs, lr_max, WARM_START_RATIO)
        curves.append(Curve(seed, lr_max, WARM_START_RATIO, accuracy, steps, len(test.lrs)))
    return curves


def run_grid(family: str, seeds: int, epochs: int, folder: Path) -> list[Curve]:
    """The grid's runs and the warm start's first trials, per seed."""
    steps = steps_per_epoch(family)
    curves = []
    for seed in range(seeds):
        for lr_max in LR_MAX:
            for ratio in RATIOS:
                curves.append(
                    Curve(seed, lr_max, ratio, _run(family, seed, epochs, lr_max, ratio), steps)
                )
        curves.extend(warm_trials(family, seed, epochs, folder))
        print(
            f"seed {seed}: {len(LR_MAX) * len(RATIOS)} runs, the warm start's 2",
            file=sys.stderr,
            flush=True,
        )
    return curves


def first_epoch_at(accuracy: tuple[float, ...], target: float, last: int) -> int | None:
    """The first epoch (1-based, at most ``last``) whose accuracy is ``>= target``."""
    for epoch, value in enumerate(accuracy[:last], 1):
        if value >= target:
            return epoch
    return None


def stop_epoch(accuracy: tuple[float, ...], patience: int) -> int:
    """The epoch an early stop ends the run at: ``patience`` epochs without a new best."""
    best, best_epoch = -1.0, 0
    for epoch, value in enumerate(accuracy, 1):
        if value > best:
            best, best_epoch = value, epoch
        elif epoch - best_epoch >= patience:
            return epoch
    return len(accuracy)


def _oracle(curves: list[Curve], target: float) -> tuple[int, Curve, int] | None:
    """The fewest steps at which one of ``curves`` reaches ``target``: (steps, curve, epoch)."""
    best: tuple[int, Curve, int] | None = None
    for curve in curves:
        epoch = first_epoch_at(curve.accuracy, target, len(curve.accuracy))
        if epoch is not None and (best is None or curve.steps(epoch) < best[0]):
            best = (curve.steps(epoch), curve, epoch)
    return best


def oracle_table(curves: list[Curve], target: float, max_steps: int) -> list[str]:
    """Per seed, the grid's oracle (any configuration, stopped at the first epoch at the
    target) and the same for the warm start's first trials (their range test included)."""
    lines = [
        "| seed | oracle over the grid: fewest steps to the target | lr_max | lr_min_ratio | "
        f"epoch | accuracy | within {max_steps:,} steps | the warm start's first trials, "
        "stopped at the best epoch: steps (range test included) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    hits, warm_hits = [], []
    for seed in sorted({c.seed for c in curves}):
        grid = _oracle([c for c in curves if c.seed == seed and not c.warm], target)
        warm = _oracle([c for c in curves if c.seed == seed and c.warm], target)
        warm_steps = math.inf if warm is None else float(warm[0])
        warm_hits.append(warm_steps)
        shown = "not reached" if warm is None else f"{warm[0]:,}"
        if grid is None:
            hits.append(math.inf)
            lines.append(f"| {seed} | not reached | | | | | no | {shown} |")
            continue
        steps, curve, epoch = grid
        hits.append(float(steps))
        lines.append(
            f"| {seed} | {steps:,} | {curve.lr_max:.4g} | {curve.ratio:g} | {epoch} | "
            f"{curve.accuracy[epoch - 1]:.4f} | {'yes' if steps <= max_steps else 'no'} "
            f"| {shown} |"
        )
    lines.append(
        f"\noracle median {_count(statistics.median(hits))} steps over the grid, "
        f"{_count(statistics.median(warm_hits))} for the warm start's first trials"
    )
    return lines


def _count(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{value:,.0f}"


def early_stop_table(curves: list[Curve], target: float, max_steps: int) -> list[str]:
    """Per rule: where it stops the grid's full runs and what that loses; the seeds where a
    stopped run reaches the target within ``max_steps`` (any run of the grid / one of the warm
    start's first trials), valued at its last epoch or at its best epoch."""
    full = [c for c in curves if len(c.accuracy) == max(len(c.accuracy) for c in curves)]
    grid = [c for c in full if not c.warm]
    lines = [
        "| rule | mean epoch stopped | accuracy lost, last epoch (points) | "
        "best epoch lost (points) | seeds with a stopped run at the target within "
        f"{max_steps:,} steps, value = last epoch / best epoch: any run of the grid | the "
        "warm start's first trials |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    seeds = sorted({c.seed for c in curves})
    for patience in PATIENCES:
        stops = [stop_epoch(c.accuracy, patience) for c in grid]
        lost_last = [c.accuracy[-1] - c.accuracy[e - 1] for c, e in zip(grid, stops, strict=True)]
        lost_best = [
            max(c.accuracy) - max(c.accuracy[:e]) for c, e in zip(grid, stops, strict=True)
        ]
        # Per (warm, seed), the values a stopped run completes with within ``max_steps``: its
        # last epoch's, or its best epoch's (``[study] value = "best"``).
        last: dict[tuple[bool, int], list[float]] = {}
        best: dict[tuple[bool, int], list[float]] = {}
        for c in full:
            epoch = stop_epoch(c.accuracy, patience)
            if c.steps(epoch) <= max_steps:
                last.setdefault((c.warm, c.seed), []).append(c.accuracy[epoch - 1])
                best.setdefault((c.warm, c.seed), []).append(max(c.accuracy[:epoch]))

        def count(values: dict[tuple[bool, int], list[float]], warm: bool) -> str:
            hits = sum(any(v >= target for v in values.get((warm, s), [])) for s in seeds)
            return f"{hits}/{len(seeds)}"

        cells = [f"{count(last, warm)} / {count(best, warm)}" for warm in (False, True)]
        lines.append(
            f"| no new best for {patience} epochs | {statistics.fmean(stops):.2f} | "
            f"{100 * statistics.fmean(lost_last):+.2f} | {100 * statistics.fmean(lost_best):+.2f} "
            f"| {cells[0]} | {cells[1]} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=list(FAMILIES), required=True)
    parser.add_argument("--target", type=float, required=True, help="validation accuracy")
    parser.add_argument("--max-steps", type=int, required=True, help="half the plain median")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tlb-") as folder:
        curves = run_grid(args.family, args.seeds, args.epochs, Path(folder))
    print(
        f"### {args.family}: batch {FAMILIES[args.family]}, {len(curves)} runs of "
        f"{args.epochs} epochs ({len(LR_MAX)} lr_max x {len(RATIOS)} ratios x {args.seeds} "
        f"seeds), SGD momentum 0.9; target {args.target:.4f}\n"
    )
    print("\n".join(oracle_table(curves, args.target, args.max_steps)))
    print()
    print("\n".join(early_stop_table(curves, args.target, args.max_steps)))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
