"""Measure which parametrization of the PLRS bounds ``(lr_min, lr_max)`` TPE searches best.

Run ``python benchmarks/space_parametrization.py [--trials 20] [--seeds 3] [--epochs 4]``.

Every arm searches (roughly) the same region, ``lr_max`` up to 1.0, with the same budget: an
Optuna ``TPESampler(multivariate=True, seed=s, n_startup_trials=trials // 3)`` and ``--trials``
trials per seed. The objective is the final validation accuracy of the digits CNN trained with
plain SGD (no momentum, batch 64) under PLRS for ``--epochs`` epochs; a diverged run scores 0.0.
Within a seed every arm trains from the same initialization and data order, so the arms differ
only in where their sampler puts the trials.

Arms:

* ``A``: ``lr_max`` log-uniform ``[1e-3, 1]`` and ``lr_min_ratio = lr_min / lr_max`` uniform
  ``[0, 1]`` (``prl_tune.PLRSSpace``, used as is).
* ``B``: center ``c`` log-uniform ``[5e-4, 0.5]`` and relative half-width ``w`` uniform
  ``[0, 1]``; ``lr_max = c (1 + w)``, ``lr_min = c (1 - w)``.
* ``C``: ``lr_min`` log-uniform ``[1e-5, 1]`` and width ``d`` log-uniform ``[1e-5, 1]``;
  ``lr_max = min(lr_min + d, 1)``.
* ``D``: ``lr_min`` and ``lr_max`` independently log-uniform ``[1e-5, 1]``, swapped when out of
  order (the naive space).

The table shows, per arm, mean ± std over seeds of the best accuracy after 10 trials and after
all trials, the mean number of trials until the best-so-far first reaches 99% of that seed's
final best, and the share of all trials scoring below 0.5 (budget spent in bad regions).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from prl_tune import PLRSSpace
from prl_tune.training import load_task, train

Suggest = Callable[[optuna.trial.Trial], tuple[float, float]]

_EARLY = 10  # "best after N trials" column
_BAD = 0.5  # accuracy below which a trial counts as wasted
_NEAR_BEST = 0.99  # "trials to reach 99% of the final best"


def _suggest_a(trial: optuna.trial.Trial) -> tuple[float, float]:
    params = PLRSSpace(lr_max=(1e-3, 1.0), lr_min_ratio=(0.0, 1.0)).suggest(trial)
    return params["lr_min"], params["lr_max"]


def _suggest_b(trial: optuna.trial.Trial) -> tuple[float, float]:
    center = trial.suggest_float("lr_center", 5e-4, 0.5, log=True)
    width = trial.suggest_float("rel_half_width", 0.0, 1.0)
    lr_max = min(center * (1.0 + width), 1.0)
    lr_min = min(max(center * (1.0 - width), 0.0), lr_max)
    return lr_min, lr_max


def _suggest_c(trial: optuna.trial.Trial) -> tuple[float, float]:
    lr_min = trial.suggest_float("lr_min", 1e-5, 1.0, log=True)
    width = trial.suggest_float("lr_width", 1e-5, 1.0, log=True)
    lr_max = min(lr_min + width, 1.0)
    return min(lr_min, lr_max), lr_max


def _suggest_d(trial: optuna.trial.Trial) -> tuple[float, float]:
    first = trial.suggest_float("lr_a", 1e-5, 1.0, log=True)
    second = trial.suggest_float("lr_b", 1e-5, 1.0, log=True)
    return min(first, second), max(first, second)


ARMS: dict[str, tuple[str, Suggest]] = {
    "A": ("log lr_max + uniform lr_min/lr_max (PLRSSpace)", _suggest_a),
    "B": ("log center + uniform relative half-width", _suggest_b),
    "C": ("log lr_min + log width", _suggest_c),
    "D": ("independent log lr_min, lr_max, sorted", _suggest_d),
}


@dataclass
class Run:
    """The accuracies of one arm's study for one seed, in trial order."""

    arm: str
    seed: int
    accuracies: list[float]
    seconds: float

    def best_after(self, n: int) -> float:
        return max(self.accuracies[:n])

    @property
    def trials_to_near_best(self) -> int:
        target = _NEAR_BEST * self.best_after(len(self.accuracies))
        best = -math.inf
        for index, accuracy in enumerate(self.accuracies, start=1):
            best = max(best, accuracy)
            if best >= target:
                return index
        return len(self.accuracies)


def evaluate(lr_min: float, lr_max: float, *, epochs: int, seed: int) -> float:
    """Final validation accuracy of a fresh digits CNN under PLRS; 0.0 if the run diverged."""
    task = load_task("digits", seed=seed, device="cpu", model="cnn", batch_size=64)
    result = train(
        task,
        epochs=epochs,
        scheduler="plrs",
        scheduler_params={"lr_min": lr_min, "lr_max": lr_max, "seed": seed},
        optimizer="sgd",
        optimizer_params={},
        device="cpu",
        seed=seed,
    )
    if result.status == "diverged" or not result.history:
        return 0.0
    accuracy = result.history[-1].val_accuracy
    return accuracy if math.isfinite(accuracy) else 0.0


def run_arm(arm: str, seed: int, *, trials: int, epochs: int) -> Run:
    """One TPE study of ``trials`` trials over arm ``arm``'s space."""
    suggest = ARMS[arm][1]
    sampler = optuna.samplers.TPESampler(
        multivariate=True, seed=seed, n_startup_trials=max(1, trials // 3)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.trial.Trial) -> float:
        lr_min, lr_max = suggest(trial)
        trial.set_user_attr("lr_min", lr_min)
        trial.set_user_attr("lr_max", lr_max)
        return evaluate(lr_min, lr_max, epochs=epochs, seed=seed)

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - started
    accuracies = [float(t.value) for t in study.trials if t.value is not None]
    best = study.best_trial
    print(
        f"  arm {arm} seed {seed}: best {max(accuracies):.4f} "
        f"(lr_min={best.user_attrs['lr_min']:.3g}, lr_max={best.user_attrs['lr_max']:.3g}), "
        f"{sum(a < _BAD for a in accuracies)}/{len(accuracies)} below {_BAD}, {seconds:.1f} s",
        flush=True,
    )
    return Run(arm, seed, accuracies, seconds)


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def report(runs: list[Run], trials: int) -> None:
    early = min(_EARLY, trials)
    header = (
        f"{'arm':<4} {f'best@{early}':>17} {f'best@{trials}':>17} "
        f"{'trials→99%':>10} {'acc<0.5':>8}  parametrization"
    )
    print(header)
    print("-" * len(header))
    for arm, (description, _) in ARMS.items():
        arm_runs = [r for r in runs if r.arm == arm]
        if not arm_runs:
            continue
        all_accuracies = [a for r in arm_runs for a in r.accuracies]
        bad = sum(a < _BAD for a in all_accuracies) / len(all_accuracies)
        to_near_best = statistics.fmean(r.trials_to_near_best for r in arm_runs)
        print(
            f"{arm:<4} {_mean_std([r.best_after(early) for r in arm_runs]):>17} "
            f"{_mean_std([r.best_after(trials) for r in arm_runs]):>17} "
            f"{to_near_best:>10.1f} {bad:>8.2f}  {description}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per study (default 20)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (default 4)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.seeds < 1 or args.epochs < 1:
        parser.error("--trials, --seeds and --epochs must be >= 1")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    print(
        f"digits CNN, SGD, batch 64, {args.epochs} epochs/trial; TPE multivariate, "
        f"{args.trials} trials ({max(1, args.trials // 3)} random), seeds 0..{args.seeds - 1}",
        flush=True,
    )
    started = time.perf_counter()
    runs = [
        run_arm(arm, seed, trials=args.trials, epochs=args.epochs)
        for seed in range(args.seeds)
        for arm in ARMS
    ]
    print()
    report(runs, args.trials)
    print(f"\ntotal wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
