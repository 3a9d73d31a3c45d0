"""How short can a trial be and still hand the user a good configuration? A lower bound for
``compute_to_target.py`` (issue 14), and what an early stop on a plateau gives.

``compute_to_target.py`` counts optimizer steps until a study's best *completed* trial is
within one point of the best any arm found. When the best plain-Optuna arm already gets there
with its first trial (``digits_mlp``: 2,880 steps = one 12-epoch trial in 3 of 5 seeds), halving
its steps needs a completed trial of at most half the epochs whose value reaches the target:
no choice of which configurations to try can do it while every trial runs all its epochs.

This script measures what shortening trials could give at best. It trains a grid of PLRS
configurations (``lr_max`` on a log grid, ``lr_min_ratio`` 0 and 0.7; SGD with momentum 0.9, as
the compute benchmark) for ``--epochs`` epochs per seed, keeps every epoch's validation
accuracy, and prints:

- per seed, the **oracle**: the fewest steps at which any configuration's validation accuracy
  reaches ``--target``, with that configuration and epoch. PLRS draws every step's LR
  independently of the number of epochs, so a run cut after ``e`` epochs is exactly the run of a
  trial with ``epochs = e``: the oracle is what a study would need if it knew the best
  configuration and the best epoch to stop before training anything;
- per early-stopping rule (stop once the validation accuracy has not improved for ``patience``
  epochs, as Keras' ``EarlyStopping`` or Lightning's), the mean epoch it stops at, the mean
  accuracy lost against the full run (last epoch against last epoch, and best epoch against
  best epoch), and the seeds whose best configuration, stopped by the rule, reaches the target
  within ``--max-steps`` steps (half the best plain arm's median).

    python benchmarks/trial_length_bound.py --family digits_mlp --target 0.9761 --max-steps 1440
    python benchmarks/trial_length_bound.py --family F --target T --max-steps S [--seeds 5]
        [--epochs 12]

The target and the half-median come from ``compute_to_target.py``'s table for the family
(``target`` in its heading, ``median steps to target`` of its best plain arm).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compute_to_target import FAMILIES
from task_families import FAMILIES as TASKS

from prl_tune.training import train

#: The grid: ``lr_max`` from 1e-3 to 10^-0.5 in quarter decades, two ``lr_min`` ratios.
LR_MAX = tuple(10 ** (-3 + 0.25 * i) for i in range(11))
RATIOS = (0.0, 0.7)
PATIENCES = (2, 3, 4)


@dataclass(frozen=True)
class Curve:
    """One configuration's run: its validation accuracy after every epoch."""

    seed: int
    lr_max: float
    ratio: float
    accuracy: tuple[float, ...]
    steps_per_epoch: int


def run_grid(family: str, seeds: int, epochs: int) -> list[Curve]:
    curves = []
    for seed in range(seeds):
        for lr_max in LR_MAX:
            for ratio in RATIOS:
                task = TASKS[family](
                    seed=seed, device=torch.device("cpu"), batch_size=FAMILIES[family]
                )
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
                accuracy = tuple(float(m.val_accuracy) for m in result.history)
                steps = len(task.train_loader)  # type: ignore[arg-type]
                curves.append(Curve(seed, lr_max, ratio, accuracy, steps))
        print(f"seed {seed}: {len(LR_MAX) * len(RATIOS)} runs", file=sys.stderr, flush=True)
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


def oracle_table(curves: list[Curve], target: float, max_steps: int) -> list[str]:
    lines = [
        "| seed | oracle: fewest steps to the target | lr_max | lr_min_ratio | epoch | "
        f"accuracy | within {max_steps:,} steps |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    hits = []
    for seed in sorted({c.seed for c in curves}):
        best: tuple[int, Curve, int] | None = None
        for curve in (c for c in curves if c.seed == seed):
            epoch = first_epoch_at(curve.accuracy, target, len(curve.accuracy))
            if epoch is not None and (best is None or epoch * curve.steps_per_epoch < best[0]):
                best = (epoch * curve.steps_per_epoch, curve, epoch)
        if best is None:
            lines.append(f"| {seed} | not reached | | | | | no |")
            hits.append(float("inf"))
            continue
        steps, curve, epoch = best
        hits.append(float(steps))
        lines.append(
            f"| {seed} | {steps:,} | {curve.lr_max:.4g} | {curve.ratio:g} | {epoch} | "
            f"{curve.accuracy[epoch - 1]:.4f} | {'yes' if steps <= max_steps else 'no'} |"
        )
    lines.append(f"\noracle median {statistics.median(hits):,.0f} steps")
    return lines


def early_stop_table(curves: list[Curve], target: float, max_steps: int) -> list[str]:
    full = [c for c in curves if c.accuracy and len(c.accuracy) == len(curves[0].accuracy)]
    lines = [
        "| rule | mean epoch stopped | accuracy lost, last epoch (points) | "
        f"best epoch lost (points) | seeds with a stopped run at the target within "
        f"{max_steps:,} steps |",
        "|---|---:|---:|---:|---:|",
    ]
    seeds = sorted({c.seed for c in full})
    for patience in PATIENCES:
        stops, lost_last, lost_best, reached = [], [], [], 0
        for curve in full:
            epoch = stop_epoch(curve.accuracy, patience)
            stops.append(epoch)
            lost_last.append(curve.accuracy[-1] - curve.accuracy[epoch - 1])
            lost_best.append(max(curve.accuracy) - max(curve.accuracy[:epoch]))
        for seed in seeds:
            # A study completes a stopped trial with its last epoch's value.
            if any(
                (epoch := stop_epoch(c.accuracy, patience)) * c.steps_per_epoch <= max_steps
                and c.accuracy[epoch - 1] >= target
                for c in full
                if c.seed == seed
            ):
                reached += 1
        lines.append(
            f"| no new best for {patience} epochs | {statistics.fmean(stops):.2f} | "
            f"{100 * statistics.fmean(lost_last):+.2f} | {100 * statistics.fmean(lost_best):+.2f} "
            f"| {reached}/{len(seeds)} |"
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
    curves = run_grid(args.family, args.seeds, args.epochs)
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
