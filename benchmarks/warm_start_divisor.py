"""Where below the LR range test's minimum should the warm start's first trials go? The divisor
ladder behind ``prl_tune.hosts._shared.warm_start_divisor``, per optimizer (issue 14).

Per task family of ``compute_to_target.py`` (at its batch sizes) and seed, the LR range test
runs once (``range_test_task``, as a study's warm start runs it), then one 12-epoch PLRS run per
divisor ``d`` with ``lr_max = min_loss_lr / d`` and ``lr_min = 0.7 lr_max`` (the warm start's
ratio). The warm start enqueues two trials, at ``d`` and ``2d``, so a divisor is scored by the
better of its pair: per ``d``, the mean and worst of that final validation accuracy over
families and seeds, and its gap to the best divisor of the ladder for the same family and
seed (mean and largest, in points). A diverged run scores 0.

    python benchmarks/warm_start_divisor.py --optimizer adamw
    python benchmarks/warm_start_divisor.py --optimizer sgd|momentum|adamw [--seeds 3]
        [--epochs 12] [--family F ...]

About 6 minutes per optimizer on one core (four families, three seeds, seven divisors).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compute_to_target import FAMILIES
from pruning_waste import OPTIMIZER_NAMES, OPTIMIZERS
from task_families import FAMILIES as TASKS

from prl_tune.lr_finder import range_test_task
from prl_tune.training import OptimizerConfig, TaskData, train

DIVISORS = (1, 2, 4, 8, 16, 32, 64)
RATIO = 0.7  # the warm start's lr_min / lr_max

#: (family, seed, divisor) -> final validation accuracy (0 for a diverged run)
Scores = dict[tuple[str, int, int], float]


def _task(family: str, seed: int) -> TaskData:
    return TASKS[family](seed=seed, device=torch.device("cpu"), batch_size=FAMILIES[family])


def run_ladder(optimizer: OptimizerConfig, families: list[str], seeds: int, epochs: int) -> Scores:
    scores: Scores = {}
    for family in families:
        for seed in range(seeds):
            test = range_test_task(
                _task(family, seed), optimizer=optimizer, seed=seed, device="cpu"
            )
            for divisor in DIVISORS:
                lr_max = float(test.min_loss_lr) / divisor
                result = train(
                    _task(family, seed),
                    epochs=epochs,
                    scheduler_params={"lr_min": RATIO * lr_max, "lr_max": lr_max},
                    optimizer=optimizer,
                    device="cpu",
                    seed=seed,
                    evaluate_test=False,
                )
                final = result.final
                ok = result.status == "completed" and final is not None
                scores[family, seed, divisor] = float(final.val_accuracy) if ok else 0.0
            print(f"{family} seed {seed}: done", file=sys.stderr, flush=True)
    return scores


def table(scores: Scores, name: str) -> list[str]:
    """One row per divisor ``d`` whose pair ``(d, 2d)`` is in the ladder."""
    cases = sorted({(family, seed) for family, seed, _ in scores})
    lines = [
        "| optimizer | d (first trials at min_loss_lr / d and / 2d) | mean of the better "
        "| worst | mean gap to the ladder's best (points) | largest gap |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for divisor in DIVISORS:
        if divisor * 2 not in DIVISORS:
            continue
        pair = [max(scores[(*c, divisor)], scores[(*c, 2 * divisor)]) for c in cases]
        best = [max(scores[(*c, d)] for d in DIVISORS) for c in cases]
        gaps = [100 * (b - p) for b, p in zip(best, pair, strict=True)]
        lines.append(
            f"| {name} | {divisor} | {statistics.fmean(pair):.4f} | {min(pair):.4f} "
            f"| {statistics.fmean(gaps):.2f} | {max(gaps):.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adamw")
    parser.add_argument("--family", action="append", choices=list(FAMILIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    section = dict(OPTIMIZERS[args.optimizer][0])
    optimizer = OptimizerConfig(section.pop("name"), **section)
    families = args.family or list(FAMILIES)
    started = time.perf_counter()
    scores = run_ladder(optimizer, families, args.seeds, args.epochs)
    print(
        f"### {OPTIMIZER_NAMES[args.optimizer]}: {', '.join(families)}; seeds 0-{args.seeds - 1}"
        f", {args.epochs} epochs, lr_min = {RATIO} lr_max\n"
    )
    print("\n".join(table(scores, OPTIMIZER_NAMES[args.optimizer])))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
