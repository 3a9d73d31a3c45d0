"""Time one ``scheduler.step()`` of PLRS against torch's schedulers and a naive PLRS.

Run ``python benchmarks/scheduler_overhead.py [--steps N] [--repeats R]``. Each scheduler is
stepped ``N`` times per repeat after a warm-up; the table shows the median over the repeats in
µs per step and the ratio to ``StepLR``. The target is a PLRS ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CyclicLR, LRScheduler, OneCycleLR, StepLR

from prl_tune.schedulers import PLRS


class NaivePLRS(LRScheduler):
    """Reference PLRS: one ``torch.rand`` call per step, through the base class's ``step``."""

    def __init__(self, optimizer: Optimizer, lr_min: float, lr_max: float, seed: int) -> None:
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.generator = torch.Generator().manual_seed(seed)
        super().__init__(optimizer)

    def get_lr(self) -> list[float | torch.Tensor]:
        n_groups = len(self.optimizer.param_groups)
        u = torch.rand(n_groups, generator=self.generator, dtype=torch.float64).tolist()
        return [self.lr_min + (self.lr_max - self.lr_min) * x for x in u]


def _optimizer(n_groups: int, tensor_lr: bool = False) -> Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(n_groups)]
    lr: float | torch.Tensor = torch.tensor(0.1) if tensor_lr else 0.1
    return torch.optim.Adam(groups, lr=lr, foreach=False)


def _cases(steps: int) -> dict[str, Callable[[], LRScheduler]]:
    total = 10 * steps + 10  # OneCycleLR refuses to step past total_steps
    return {
        "StepLR": lambda: StepLR(_optimizer(1), step_size=1000),
        "CyclicLR": lambda: CyclicLR(
            _optimizer(1), base_lr=0.01, max_lr=0.1, step_size_up=500, cycle_momentum=False
        ),
        "OneCycleLR": lambda: OneCycleLR(_optimizer(1), max_lr=0.1, total_steps=total),
        "naive PLRS (torch.rand per step)": lambda: NaivePLRS(_optimizer(1), 0.01, 0.1, seed=0),
        "PLRS, 1 group": lambda: PLRS(_optimizer(1), 0.01, 0.1, seed=0),
        "PLRS, 4 groups": lambda: PLRS(_optimizer(4), 0.01, 0.1, seed=0),
        "PLRS, 1 group, tensor lr": lambda: PLRS(_optimizer(1, tensor_lr=True), 0.01, 0.1, seed=0),
        "StepLR, 4 groups": lambda: StepLR(_optimizer(4), step_size=1000),
        "StepLR, tensor lr": lambda: StepLR(_optimizer(1, tensor_lr=True), step_size=1000),
    }


def _time_per_step_us(make: Callable[[], LRScheduler], steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of one ``step()``, in µs."""
    scheduler = make()
    scheduler.optimizer.step()  # no gradients: a no-op that satisfies the step-order check
    step = scheduler.step
    for _ in range(min(steps, 2000)):  # warm-up
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(steps):
            step()
        times.append((time.perf_counter_ns() - start) / steps / 1000.0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Print a table of µs per ``step()`` and the ratio to ``StepLR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; the median is shown")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be >= 1")
    torch.set_num_threads(1)

    cases = _cases(args.steps)
    results = {
        name: _time_per_step_us(make, args.steps, args.repeats) for name, make in cases.items()
    }
    baseline = results["StepLR"]
    width = max(len(name) for name in results)
    print(f"torch {torch.__version__}, {args.steps} steps x {args.repeats} repeats (median)")
    print(f"{'scheduler':<{width}}  {'µs/step':>8}  {'vs StepLR':>9}")
    for name, us in results.items():
        print(f"{name:<{width}}  {us:>8.3f}  {us / baseline:>9.2f}")
    plrs_ratio = results["PLRS, 1 group"] / baseline
    print(f"target PLRS / StepLR <= 1.0: {'met' if plrs_ratio <= 1.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
