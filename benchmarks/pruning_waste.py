"""Wasted compute of a wide PLRS study, side by side: Optuna's pruners vs prl_tune's rules/memory.

Same task (digits CNN, batch 16: 90 optimizer steps per epoch; plain SGD as in the paper), same
TPE sampler and seeds, a wide space (``lr_max`` log-uniform over [1e-3, 10], ``lr_min`` a
uniform fraction of it), several seeds, all arms in one run:

  (a) no pruner                 (b) Optuna MedianPruner (defaults)   (c) Optuna HyperbandPruner
  (d) prl_tune rules only       (e) rules + memory                   (f) (e) wrapping MedianPruner
  (g) (e) with the lr_max range set by the LR range test

Arms (a)-(c) keep only the loop's hard stop on a non-finite loss (a NaN run cannot go on).

A trial "ended unstable" when its training loss went non-finite, when prl_tune's rules stopped
it (exploded or collapsed), or when it ended at chance level after a spike: its last validation
accuracy was <= 0.2 (chance is 0.1) and its running training loss had risen above 1.5x the
larger of its first step's loss and the chance level ln 10. Memory-pruned trials ran no step.
Printed per arm (mean over seeds): optimizer steps in total, steps spent in unstable trials,
best validation accuracy, and the steps until the best-so-far reached 99% of the arm's final
best.

    python benchmarks/pruning_waste.py [--seeds 3] [--trials 30] [--epochs 8]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from prl_tune.config import StudySpec
from prl_tune.hosts.optuna import run_study

CHANCE_LOSS = math.log(10)  # digits: 10 classes
ARMS: dict[str, dict[str, Any]] = {
    "a no pruner": {"base": "none", "rules": False, "memory": "off"},
    "b median": {"base": "median", "rules": False, "memory": "off"},
    "c hyperband": {"base": "hyperband", "rules": False, "memory": "off"},
    "d rules": {"base": "none", "rules": True, "memory": "off"},
    "e rules+memory": {"base": "none", "rules": True, "memory": "dominance"},
    "f (e)+median": {"base": "median", "rules": True, "memory": "dominance"},
    "g (e)+range-test": {"base": "none", "rules": True, "memory": "dominance", "range": True},
}


def make_spec(
    arm: dict[str, Any],
    seed: int,
    trials: int,
    epochs: int,
    storage: str,
    check_every: int | None = None,
) -> StudySpec:
    pruning = {k: v for k, v in arm.items() if k != "range"}
    if check_every is not None:  # the loop's check interval, for every arm
        on = pruning["rules"]
        pruning["rules"] = {"check_every": check_every}
        if not on:
            pruning["rules"].update(explode_factor=False, collapse_window=False)
    if pruning["base"] == "median":
        pruning["n_startup_trials"] = 5  # Optuna's MedianPruner defaults
    return StudySpec.from_dict(
        {
            "study": {"name": f"s{seed}", "storage": storage, "n_trials": trials, "seed": seed},
            "task": {
                "name": "digits",
                "epochs": epochs,
                "device": "cpu",
                "params": {"model": "cnn", "batch_size": 16},
            },
            "optimizer": {"name": "sgd"},
            "space": {
                "lr_max": "range-test" if arm.get("range") else [1e-3, 10.0],
                "lr_min_ratio": [0.0, 1.0],
            },
            "pruning": pruning,
        }
    )


def unstable(trial: FrozenTrial) -> bool:
    attrs = trial.user_attrs
    if attrs.get("pruned_by") == "memory":
        return False  # ran no step
    if attrs.get("unstable"):
        return True
    history = attrs.get("history") or []
    if not history:
        return False
    initial, peak = attrs.get("initial_loss"), attrs.get("peak_loss")
    if not (isinstance(initial, float) and isinstance(peak, float)):
        return False
    spiked = peak > 1.5 * max(initial, CHANCE_LOSS)
    return bool(spiked and history[-1]["val_accuracy"] <= 0.2)


def analyse(study: optuna.Study) -> dict[str, float]:
    trials = sorted(study.trials, key=lambda t: t.number)
    steps = [int(t.user_attrs.get("steps", 0)) for t in trials]
    values = [
        t.value if t.state == TrialState.COMPLETE and t.value is not None else -math.inf
        for t in trials
    ]
    best = max(values)
    cumulative, reached = 0, 0
    for used, value in zip(steps, values, strict=True):
        cumulative += used
        if value >= 0.99 * best:
            reached = cumulative
            break
    return {
        "steps": float(sum(steps)),
        "unstable_steps": float(sum(s for s, t in zip(steps, trials, strict=True) if unstable(t))),
        "best": best,
        "steps_to_99": float(reached),
        "unstable_trials": float(sum(unstable(t) for t in trials)),
        "memory_pruned": float(sum(t.user_attrs.get("pruned_by") == "memory" for t in trials)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), help="arm names (default all)")
    parser.add_argument(
        "--check-every", type=int, default=None, help="steps between checks (default: rules')"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.arms}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.arms:
            for seed in range(args.seeds):
                storage = f"sqlite:///{Path(folder) / (name.split()[0] + f'{seed}.db')}"
                spec = make_spec(
                    ARMS[name], seed, args.trials, args.epochs, storage, args.check_every
                )
                t0 = time.perf_counter()
                study = run_study(spec, stream=None)
                row = analyse(study)
                results[name].append(row)
                print(
                    f"{name:<18} seed {seed}: best {row['best']:.4f}, steps {row['steps']:.0f}, "
                    f"unstable steps {row['unstable_steps']:.0f}, "
                    f"{time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    header = (
        f"{'arm':<18} {'steps':>8} {'unstable steps':>15} {'best acc':>9} "
        f"{'steps to 99%':>13} {'unstable trials':>16} {'memory-pruned':>14}"
    )
    print(header)
    print("-" * len(header))
    mean = statistics.fmean
    for name, rows in results.items():
        print(
            f"{name:<18} {mean(r['steps'] for r in rows):>8.0f} "
            f"{mean(r['unstable_steps'] for r in rows):>15.0f} "
            f"{mean(r['best'] for r in rows):>9.4f} "
            f"{mean(r['steps_to_99'] for r in rows):>13.0f} "
            f"{mean(r['unstable_trials'] for r in rows):>16.1f} "
            f"{mean(r['memory_pruned'] for r in rows):>14.1f}"
        )
    if "b median" in results and "e rules+memory" in results:
        b = mean(r["unstable_steps"] for r in results["b median"])
        e = mean(r["unstable_steps"] for r in results["e rules+memory"])
        print(f"\nunstable steps (e)/(b): {e / b:.2f} (target <= 0.25)" if b else "")
    print(f"total wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
